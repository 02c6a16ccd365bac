"""Preference and RL methods as jobs over HTTP (/api/v1/jobs and OpenAI's /v1/fine_tuning/jobs) on the tiny model:
a DPO job and a GRPO job run to a registered version that records the method and what the run measured, OpenAI's
dpo and reinforcement forms map onto them, and a wrong method, grader or data kind is a 422 naming the field. One
DPO job is shared by the module."""

import time
from pathlib import Path

import openai
import pytest
import requests
from openai import OpenAI

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sample"
PAIRS = (SAMPLES / "concise_preferences.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
MATH = (SAMPLES / "business_math.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
SFT = (SAMPLES / "brokerage_support.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
SHORT = {"max_steps": 2, "batch_size": 2, "logging_steps": 1, "eval_steps": 2}
NUMERIC = [{"name": "total", "type": "numeric", "reference_field": "metadata.answer", "tolerance_abs": 0.005}]


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def upload(server: str, key: str, name: str, lines: list[str]) -> str:
    response = requests.post(f"{server}/api/v1/datasets", headers=auth(key),
                             files={"file": (name, "".join(lines).encode())}, timeout=120)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def finished(server: str, key: str, job: dict) -> dict:
    """Poll a job until it ends (5 minutes at most); it must have succeeded (else its error and last events show)."""
    deadline = time.time() + 300
    while job["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.time() < deadline, job
        time.sleep(0.5)
        job = requests.get(f"{server}/api/v1/jobs/{job['id']}", headers=auth(key), timeout=10).json()
    if job["status"] != "succeeded":
        events = requests.get(f"{server}/api/v1/jobs/{job['id']}/events", params={"limit": 1000}, headers=auth(key),
                              timeout=10).json()["data"]
        pytest.fail(f"{job['status']}: {job['error']}; {[(e['type'], e['message']) for e in events[-5:]]}")
    return job


def create(server: str, key: str, **body) -> requests.Response:
    return requests.post(f"{server}/api/v1/jobs", json={"base_model": "tiny-r1", **body}, headers=auth(key), timeout=60)


@pytest.fixture(scope="module")
def data(server, keys) -> dict:
    key = keys["alice"]
    return {"pairs": upload(server, key, "pairs.jsonl", PAIRS[:16]),
            "pairs_valid": upload(server, key, "pairs_valid.jsonl", PAIRS[16:20]),
            "math": upload(server, key, "math.jsonl", MATH[:8]),
            "math_valid": upload(server, key, "math_valid.jsonl", MATH[8:10]),
            "sft": upload(server, key, "sft.jsonl", SFT[:8])}


@pytest.fixture(scope="module")
def dpo_job(server, keys, data) -> dict:
    response = create(server, keys["alice"], dataset_id=data["pairs"], validation_dataset_id=data["pairs_valid"],
                      suffix="dpo-bot", hyperparameters=SHORT,
                      method={"type": "dpo", "weights": "lora", "dpo": {"beta": 0.2}})
    assert response.status_code == 201, response.text
    assert response.json()["method"] == "dpo"
    return finished(server, keys["alice"], response.json())


@pytest.mark.slow
def test_a_dpo_job_registers_a_version_with_its_method_beta_and_reward_metrics(server, keys, dpo_job):
    assert dpo_job["fine_tuned_model"] == "dpo-bot:1"
    version = requests.get(f"{server}/api/v1/models/dpo-bot/versions/1", headers=auth(keys["alice"]), timeout=10).json()
    lineage = version["lineage"]
    assert lineage["method"] == "dpo"
    assert lineage["method_config"]["type"] == "dpo" and lineage["method_config"]["dpo"]["beta"] == 0.2
    assert "grpo" not in lineage["method_config"]  # only the section of the method that ran
    # evaluated as an SFT version is, on the validation pairs' chosen answers (so the default promotion gate,
    # eval_loss:min,rouge_l:max,bleu:max, compares it with any version), plus the reward metrics DPO measured itself
    evaluation = version["evaluation"]
    assert evaluation["generated"] == 4 and {"eval_loss", "rouge_l", "bleu"} <= evaluation["base"].keys()
    assert evaluation["measured"]["source"] == "training_metrics" and evaluation["measured"]["split"] == "validation"
    for name in ("eval_loss", "rouge_l", "bleu", "eos_rate", "eval_rewards/accuracies", "eval_rewards/margins",
                 "preference_loss"):
        assert isinstance(version["metrics"][name], float), (name, version["metrics"])
    assert version["metrics"]["eval_loss"] == evaluation["candidate"]["eval_loss"]  # the chosen answers' loss
    assert version["metrics"]["eval_loss"] != version["metrics"]["preference_loss"]
    events = requests.get(f"{server}/api/v1/jobs/{dpo_job['id']}/events", params={"limit": 1000},
                          headers=auth(keys["alice"]), timeout=10).json()["data"]
    evaluated = [event for event in events if event["type"] == "evaluated"]
    assert len(evaluated) == 1 and {"eval_rewards/accuracies", "rouge_l"} <= evaluated[0]["data"]["candidate"].keys()


@pytest.mark.slow
def test_a_grpo_job_with_an_inline_grader_succeeds(server, keys, data):
    response = create(server, keys["alice"], dataset_id=data["math"], validation_dataset_id=data["math_valid"],
                      suffix="grpo-bot",
                      hyperparameters={"max_steps": 1, "batch_size": 2, "logging_steps": 1},
                      method={"type": "grpo", "grpo": {"graders": NUMERIC, "num_generations": 2,
                                                       "max_completion_length": 16}})
    assert response.status_code == 201, response.text
    job = finished(server, keys["alice"], response.json())
    version = requests.get(f"{server}/api/v1/models/grpo-bot/versions/1", headers=auth(keys["alice"]), timeout=10).json()
    assert version["lineage"]["method_config"]["grpo"]["graders"] == NUMERIC
    assert job["method"] == "grpo" and "reward_mean" in version["metrics"]
    # its graders measured on the validation prompts, base against result, beside the last training rewards
    evaluation = version["evaluation"]
    assert evaluation["generated"] == 2 and evaluation["measured"]["split"] == "train"
    for side in ("base", "candidate"):
        assert 0.0 <= evaluation[side]["grader.total"] <= 1.0 and "eval_loss" in evaluation[side]
    assert version["metrics"]["grader.total"] == evaluation["candidate"]["grader.total"]


def test_wrong_methods_graders_and_data_kinds_are_422s_naming_the_field(server, keys, data):
    cases = [
        ({"dataset_id": data["math"], "method": {"type": "grpo", "grpo": {"graders": "config/graders/business_math.yaml"}}},
         "method.grpo.graders"),  # no path from a request into the filesystem
        ({"dataset_id": data["math"], "method": {"type": "grpo", "grpo": {"graders": [{"name": "t", "type": "numerc"}]}}},
         "method.grpo.graders[0].type"),
        ({"dataset_id": data["pairs"], "method": {"type": "dpo", "dpo": {"bta": 0.1}}}, "method.dpo.bta"),
        ({"dataset_id": data["pairs"], "method": {"type": "dpo", "dpo": {"beta": -1}}}, "method.dpo.beta"),
        ({"dataset_id": data["pairs"], "method": {"type": "dpo", "colour": 1}}, "method.colour"),
        ({"dataset_id": data["pairs"], "method": "dpox"}, "method"),
        ({"dataset_id": data["sft"], "method": "dpo"}, "dataset_id"),
        ({"dataset_id": data["pairs"], "method": "lora"}, "dataset_id"),
        ({"dataset_id": data["pairs"], "method": {"type": "grpo", "grpo": {"graders": NUMERIC}}}, "dataset_id"),
        ({"dataset_id": data["pairs"], "validation_dataset_id": data["sft"], "method": "dpo"}, "validation_dataset_id"),
    ]
    for body, param in cases:
        response = create(server, keys["alice"], **body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["details"]["param"] == param, (body, response.json())


@pytest.fixture(scope="module")
def alice(server, keys) -> OpenAI:
    return OpenAI(base_url=f"{server}/v1", api_key=keys["alice"], max_retries=0, timeout=60)


@pytest.mark.slow
def test_openai_dpo_is_created_with_its_beta(server, keys, alice, data, dpo_job):
    job = alice.fine_tuning.jobs.create(model="tiny-r1", training_file=data["pairs"], method={
        "type": "dpo", "dpo": {"hyperparameters": {"beta": 0.3, "n_epochs": 1, "batch_size": 2,
                                                   "learning_rate_multiplier": 0.5}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.3
    assert job.hyperparameters.learning_rate_multiplier == 0.5  # of the preference rate, 2e-4
    alice.fine_tuning.jobs.cancel(job.id)  # the shared DPO job showed that one trains; this one checks the mapping
    ours = requests.get(f"{server}/api/v1/jobs/{job.id}", headers=auth(keys["alice"]), timeout=10).json()
    assert ours["method"] == "dpo" and ours["hyperparameters"]["learning_rate"] == pytest.approx(1e-4)


def test_openai_reinforcement_maps_graders_and_refuses_the_ones_llmft_cannot_run(alice, data):
    check = {"type": "string_check", "name": "Exact answer", "input": "{{sample.output_text}}",
             "reference": "{{item.metadata.answer}}", "operation": "eq"}
    job = alice.fine_tuning.jobs.create(model="tiny-r1", training_file=data["math"], method={
        "type": "reinforcement", "reinforcement": {"grader": {"type": "multi", "calculate_output": "exact + total",
                                                              "graders": {"exact": check, "total": NUMERIC[0]}}}})
    assert job.method.type == "reinforcement"
    alice.fine_tuning.jobs.cancel(job.id)
    for grader, param in (({"type": "python", "name": "p", "source": "def grade(s, i): return 1"},
                           "method.reinforcement.grader.type"),
                          ({"type": "multi", "graders": {"a": NUMERIC[0]}, "calculate_output": "a * 2"},
                           "method.reinforcement.grader.calculate_output"),
                          ({**check, "operation": "sort_of"}, "method.reinforcement.grader[0].operation")):
        with pytest.raises(openai.BadRequestError) as caught:
            alice.fine_tuning.jobs.create(model="tiny-r1", training_file=data["math"],
                                          method={"type": "reinforcement", "reinforcement": {"grader": grader}})
        assert caught.value.param == param, caught.value.body
    with pytest.raises(openai.BadRequestError) as caught:
        alice.fine_tuning.jobs.create(model="tiny-r1", training_file=data["sft"], method={"type": "dpo"})
    assert caught.value.param == "training_file" and "preference" in caught.value.message
