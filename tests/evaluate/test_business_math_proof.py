"""The reasoning proof of docs/benchmarks.md ("Reasoning on a real model"), short: `smollm2-135m`, a real pretrained
chat model whose template has no reasoning field, fine-tuned (LoRA, 3 epochs) on 48 business-math records with step-by-step traces
(data/sample/business_math.jsonl) through the OpenAI fine-tuning API of a real `llmft serve`, graded by
config/graders/business_math.yaml in the job's own evaluation, then served through the official `openai` client.

The full run (800 records, 1 epoch) is the table in docs/benchmarks.md; this one checks, in a few minutes, what
the table rests on: the fine-tune closes its think block and stops where the base does neither, its version records
that in its reasoning contract, and serving splits the reasoning into `reasoning_content`."""

import json
import os
import time
from pathlib import Path

import openai
import pytest
import requests

from tests.api.conftest import make_key

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
TRAIN, VALIDATION = 48, 16

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def proof_server(server_home, smollm2_dir, start_server):
    home = server_home("proof-home")
    (home / "models" / "smollm2-135m").symlink_to(smollm2_dir, target_is_directory=True)
    env = {**os.environ, "LLMFT_HOME": str(home), "JOB_EVAL_GRADERS": str(ROOT / "config/graders/business_math.yaml"),
           "JOB_EVAL_MAX_SAMPLES": str(VALIDATION), "JOB_EVAL_MAX_NEW_TOKENS": "auto",  # the default (conftest lowers it)
           "INFERENCE_MAX_NEW_TOKENS": "256"}
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)  # embedded defaults: SQLite and its broker, this server's own
    base = start_server(env)
    return base, make_key(env, "proof", "admin")


def _lines(name: str, count: int, folder: Path) -> Path:
    path = folder / name
    path.write_text("".join((SAMPLE / name).read_text().splitlines(keepends=True)[:count]))
    return path


def test_a_short_fine_tune_closes_its_think_block_stops_and_serves_reasoning_apart(proof_server, tmp_path):
    base, key = proof_server
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=3)  # the client's own retries, as users run it
    training = client.files.create(file=_lines("business_math.jsonl", TRAIN, tmp_path).open("rb"), purpose="fine-tune")
    validation = client.files.create(file=_lines("business_math_validation.jsonl", VALIDATION, tmp_path).open("rb"),
                                     purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="smollm2-135m", training_file=training.id,
                                         validation_file=validation.id, suffix="bizmath",
                                         hyperparameters={"n_epochs": 3})
    job = _wait(client, job.id)
    assert job.status == "succeeded", job
    name, version = job.fine_tuned_model.split(":")
    found = requests.get(f"{base}/api/v1/models/{name}/versions/{version}",
                         headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
    metrics, contract = found["metrics"], found["lineage"]["reasoning"]

    # The version was trained with inline think tags (ChatML has no reasoning field) and recorded what it measured.
    assert contract["reasoning_format"] == "think_tags" and contract["think_mode"] == "mask"
    # 48 records, 3 epochs: 14 of the 16 close their trace and stop (the full run of docs/benchmarks.md: all 40)
    assert contract["closed_think_rate"] == metrics["closed_think_rate"] >= 0.8
    assert contract["eos_rate"] == metrics["eos_rate"] >= 0.8
    assert metrics["grader.format"] >= 0.8 and metrics["mean_reasoning_tokens"] > 20
    evaluated = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.data.get("event") == "evaluated"]
    base_side = evaluated[0].data["base"]  # the base never reasons (no think block: nothing left open), stops less often
    assert base_side["grader.format"] == 0.0 and base_side["mean_reasoning_tokens"] == 0.0
    assert base_side["eos_rate"] < metrics["eos_rate"]

    question = json.loads((SAMPLE / "business_math_validation.jsonl").read_text().splitlines()[-1])["messages"][0]
    reply = client.chat.completions.create(model=job.fine_tuned_model, messages=[question], temperature=0)
    choice = reply.choices[0]
    reasoning = choice.message.model_extra.get("reasoning_content")
    assert choice.finish_reason == "stop" and reasoning and "<think>" not in choice.message.content
    assert "</think>" not in reasoning and choice.message.content.strip().startswith("The ")
    assert reply.usage.completion_tokens_details.reasoning_tokens > 0


def _wait(client: openai.OpenAI, job_id: str, seconds: float = 2400):
    deadline = time.time() + seconds
    job = client.fine_tuning.jobs.retrieve(job_id)
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.time() < deadline, job
        time.sleep(2)
        job = client.fine_tuning.jobs.retrieve(job_id)
    return job
