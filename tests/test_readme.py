"""The README's quick start, run as it is against a real `llmft serve` (gunicorn and the embedded worker).

The bash block after the QUICK_START marker in README.md runs in bash from the repository root, its one
URL (http://127.0.0.1:8000) pointed at this test's server on a free port; README_CN.md must hold the same
commands. It is also CI's check on a real pretrained model: the job fine-tunes smollm2-135m on the FAQ
sample with no hyperparameters ("auto"), and must lower the validation loss by at least 20%, raise
ROUGE-L and the share of facts hit, and be served through /v1/chat/completions with a finished answer
that gives the phone number it learned.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK_START = "<!-- quick start: tests/test_readme.py runs this block as it is -->"
URL = "http://127.0.0.1:8000"


def quick_start(readme: Path) -> str:
    """The bash block that follows the QUICK_START marker."""
    text = readme.read_text(encoding="utf-8")
    assert QUICK_START in text, f"{readme.name} lost its quick start marker"
    return text.split(QUICK_START, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]


def commands(block: str) -> list[str]:
    """The block's lines with their trailing comments dropped (the Chinese README translates only those)."""
    return [re.sub(r"\s+#\s.*$", "", line).rstrip() for line in block.splitlines()]


def test_the_chinese_readme_has_the_same_quick_start():
    assert commands(quick_start(ROOT / "README_CN.md")) == commands(quick_start(ROOT / "README.md"))


def sse_events(stream: str) -> dict[str, list[dict]]:
    """{event type: [data, ...]} of a server-sent event stream printed by curl."""
    events: dict[str, list[dict]] = {}
    kind = None
    for line in stream.splitlines():
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind:
            events.setdefault(kind, []).append(json.loads(line.removeprefix("data: ")))
    return events


@pytest.mark.slow
def test_quick_start_runs_as_written_and_the_fine_tune_learns(server_home, start_server, smollm2_dir):
    home = server_home("quick-start")
    (home / "models" / "smollm2-135m").symlink_to(smollm2_dir.resolve(), target_is_directory=True)
    env = {**os.environ, "LLMFT_HOME": str(home), "JOB_EVAL_MAX_NEW_TOKENS": "auto",  # the default (conftest lowers it)
           "JOB_STREAM_MAX_SECONDS": "3600"}  # on one thread beside the suite's other worker, the job may outlast 10 min
    server = start_server(env)
    block = quick_start(ROOT / "README.md")
    assert block.count(URL) == 1
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.replace(URL, server)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=2400)
    log = (home / "server.log").read_text()[-4000:]
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}\n{log}"

    *stream, base_line, tuned_line = [line for line in done.stdout.splitlines() if line.strip()]
    events = sse_events("\n".join(stream))
    assert events["end"] == [{"status": "succeeded"}], done.stdout[-3000:]
    ready = events["data_ready"][0]["data"]  # the hyperparameters, chosen from the data
    assert {"num_epochs", "batch_size", "learning_rate"} <= set(ready["auto"]), ready
    evaluated = events["evaluated"][0]["data"]
    base, tuned = evaluated["base"], evaluated["candidate"]
    assert tuned["eval_loss"] <= 0.8 * base["eval_loss"], evaluated
    assert tuned["rouge_l"] > base["rouge_l"] and tuned["fact_hit"] > base["fact_hit"], evaluated

    base_reply, tuned_reply = json.loads(base_line), json.loads(tuned_line)
    assert base_reply["model"] == "smollm2-135m" and tuned_reply["model"] == "cobalt:1"
    answer = tuned_reply["choices"][0]
    assert answer["finish_reason"] == "stop", tuned_reply
    assert "0800 555 0134" in answer["message"]["content"], tuned_reply  # the README says it does
    assert "0800 555 0134" not in base_reply["choices"][0]["message"]["content"]
