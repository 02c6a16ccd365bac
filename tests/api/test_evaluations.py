"""POST /api/v1/evaluations in-process: the defaults (200 samples, the "auto" budget) reach the job's config,
a number is kept, and a wrong value is a 422 naming its field; a grader spec reaches it checked, and a bad one
(unknown type or key, bad regex) is a 422 naming the field. The job runs in test_registry.py."""

from pathlib import Path

import pytest
import requests

from llmft.api.app import create_app
from llmft.auth.keys import authenticate, create_key
from llmft.data.service import upload_dataset
from llmft.db.session import session_scope
from llmft.db.tables import Job
from llmft.settings import load_settings
from tests.api.conftest import follow

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


@pytest.fixture
def api(tmp_path, tiny_model_dir):
    """A test client, its admin key and a stored dataset's id."""
    app = create_app(load_settings(llmft_home=tmp_path))
    settings = app.config["SETTINGS"]
    with session_scope(settings.sqlalchemy_url) as session:
        key, _ = create_key(session, tenant="acme", role="admin")
        with open(SAMPLE, "rb") as stream:
            dataset, _ = upload_dataset(session, principal=authenticate(session, key), uploads_dir=settings.uploads_dir,
                                        filename="support.jsonl", stream=stream)
    client = app.test_client()

    def post(**body):
        return client.post("/api/v1/evaluations", json={"model": "tiny-r1", "dataset_id": dataset.id, **body},
                           headers={"Authorization": f"Bearer {key}"})

    def config(job_id: str) -> dict:
        with session_scope(settings.sqlalchemy_url) as session:
            return session.get(Job, job_id).config

    return post, config


def test_the_defaults_are_200_samples_and_the_auto_budget_and_a_number_is_kept(api):
    post, config = api
    created = post()
    assert created.status_code == 202, created.json
    assert {k: config(created.json["id"])[k] for k in ("max_samples", "max_new_tokens")} == \
        {"max_samples": 200, "max_new_tokens": "auto"}
    created = post(max_new_tokens=64, max_samples=5)
    assert created.status_code == 202, created.json
    assert {k: config(created.json["id"])[k] for k in ("max_samples", "max_new_tokens")} == \
        {"max_samples": 5, "max_new_tokens": 64}
    assert config(post(max_new_tokens="auto").json["id"])["max_new_tokens"] == "auto"


@pytest.mark.parametrize("field, value", [
    ("max_new_tokens", "lots"), ("max_new_tokens", 0), ("max_new_tokens", 8193), ("max_new_tokens", 16.5),
    ("max_new_tokens", "16"), ("max_new_tokens", True), ("max_new_tokens", None),
    ("max_samples", -1), ("max_samples", 1001), ("max_samples", "all"),
])
def test_a_wrong_value_is_422_naming_the_field(api, field, value):
    post, _ = api
    response = post(**{field: value})
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "invalid" and field in str(error["details"]), error


def test_graders_reach_the_job_checked_with_their_options(api):
    post, config = api
    graders = [{"name": "total", "type": "numeric", "tolerance_abs": 0.005}, {"name": "fmt", "type": "think_format"}]
    created = post(graders=graders, pass_k=4, thinking_budgets=[1024, 256])
    assert created.status_code == 202, created.json
    assert config(created.json["id"])["grading"] == {"graders": graders, "pass_k": 4, "thinking_budgets": [256, 1024],
                                                     "answer_tokens": 256}
    assert config(post().json["id"])["grading"] == {}  # no graders: the evaluation as before


@pytest.mark.parametrize("body, param, words", [
    ({"graders": [{"name": "a", "type": "numerc"}]}, "graders[0].type", "did you mean 'numeric'"),
    ({"graders": [{"name": "a", "type": "match"}, {"name": "b", "type": "regex", "pattern": "([a-z]"}]},
     "graders[1].pattern", "not a valid regular expression"),
    ({"graders": [{"name": "a", "type": "match", "mdoe": "exact"}]}, "graders[0].mdoe", "did you mean 'mode'"),
    ({"graders": [{"name": "a", "type": "facts", "facts": "x"}]}, "graders[0].facts", "list"),
    ({"pass_k": 4}, "pass_k", "give graders too"),
    ({"thinking_budgets": [256]}, "thinking_budgets", "give graders too"),
])
def test_a_bad_grader_spec_is_422_naming_the_field(api, body, param, words):
    post, _ = api
    response = post(**body)
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == "invalid" and error["details"]["param"] == param and param in error["message"], error
    assert words in error["details"]["problems"][param]


@pytest.mark.parametrize("field, value", [
    ("pass_k", 0), ("pass_k", 17), ("thinking_budgets", [0]), ("thinking_budgets", [1, 2, 3, 4, 5]),
    ("thinking_budgets", "256"), ("answer_tokens", 0), ("graders", []), ("graders", "total:numeric"),
])
def test_grading_options_out_of_range_are_422_naming_the_field(api, field, value):
    post, _ = api
    response = post(**{field: value})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid" and field in str(response.json["error"]["details"])


BUSINESS = Path(__file__).resolve().parents[2] / "data" / "sample" / "business_math.jsonl"


@pytest.mark.slow
def test_an_evaluation_job_with_graders_reports_them_on_a_live_server(server, keys):
    """The whole path: the spec through HTTP, the job's config, the worker's child, the report as the job's result."""
    headers = {"Authorization": f"Bearer {keys['alice']}"}
    small = "".join(BUSINESS.read_text(encoding="utf-8").splitlines(keepends=True)[:30]).encode()
    dataset = requests.post(f"{server}/api/v1/datasets", headers=headers, files={"file": ("bm.jsonl", small)},
                            timeout=120).json()["id"]
    graders = [{"name": "total", "type": "numeric", "reference_field": "metadata.answer"},
               {"name": "closed", "type": "think_format", "require_reasoning": False, "require_eos": False}]
    created = requests.post(f"{server}/api/v1/evaluations", headers=headers, timeout=30, json={
        "model": "tiny-r1", "dataset_id": dataset, "max_samples": 2, "max_new_tokens": 4, "graders": graders,
        "pass_k": 2, "thinking_budgets": [3], "answer_tokens": 2})
    assert created.status_code == 202, created.json()
    report = follow(server, keys["alice"], created.json())["result"]
    base = report["base"]
    assert report["graders"] == graders and report["pass_k"] == 2 and report["thinking_budgets"] == [3]
    assert base["grader.total"] == 0.0 and base["grader.closed"] == 0.0  # tiny-r1 writes newlines, never closes
    assert base["grader.closed.budget_3"] == 1.0  # the budget closed the think block
    assert 0.0 <= base["grader.total.pass@2"] <= 1.0 and base["eos_rate"] == 0.0
    assert [set(s["base"]["grades"]) for s in report["samples"]] == [{"total", "closed"}] * 2
