"""The dashboard at /ui. In process: the routes need no key, stay out of the OpenAPI document and send
only the package's files. In headless Chromium against a real server: sign in, upload, train, watch
the loss chart grow, see the version's evaluation with three of its examples, promote the version (and
see the gate refuse a worse one), roll back, chat with NAME@ALIAS, switch to Chinese. A screenshot of
each stage goes to test-output/screenshots/ (and
`failed-<stage>.png` where a stage fails).

    .venv/bin/python -m pytest -q tests/web -p no:cacheprovider
"""

import json
import re
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"
ANSWERS = {json.loads(line)["messages"][-1]["content"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()}



@pytest.fixture
def client(tmp_path):
    from llmft.api.app import create_app
    from llmft.settings import load_settings

    return create_app(load_settings(llmft_home=tmp_path, rate_limit="2/minute")).test_client()


def test_the_page_and_its_files_need_no_key_and_are_not_rate_limited(client):
    for _ in range(3):
        page = client.get("/ui")
        assert page.status_code == 200 and page.mimetype == "text/html"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/ui/static/js/app.js").mimetype == "text/javascript"
    assert client.get("/ui/static/style.css").mimetype == "text/css"


@pytest.mark.parametrize("path", ["/ui/static/../ui.py", "/ui/static/%2e%2e/ui.py", "/ui/static/js/missing.js",
                                  "/ui/static/__init__.py", "/ui/static/..%2f..%2fapi/app.py"])
def test_only_the_listed_files_are_sent(client, path):
    response = client.get(path)
    assert response.status_code == 404 and response.json["error"]["code"] == "not_found"


def test_the_dashboard_is_not_an_api_operation(client):
    assert not [path for path in client.get("/openapi.json").json["paths"] if path.startswith("/ui")]


@contextmanager
def stage(page, screenshots, name):
    try:
        yield
    except BaseException:
        page.screenshot(path=screenshots / f"failed-{name}.png", full_page=True)
        raise
    page.screenshot(path=screenshots / f"{name}.png", full_page=True)


def points(page, chart: str) -> int:
    return page.locator(f"figure[data-chart={chart}] circle.point").count()


@pytest.mark.slow
def test_the_whole_loop_in_the_browser(page, ui_server, admin_key, screenshots, tmp_path):
    with stage(page, screenshots, "01-sign-in-refused"):
        page.goto(f"{ui_server}/ui")
        page.fill("#api-key", "llmft_not-a-key")
        page.click("#signin-form button[type=submit]")
        page.locator("#signin-form .error").wait_for()
        assert "API key" in page.inner_text("#signin-form .error")

    with stage(page, screenshots, "02-signed-in"):
        page.fill("#api-key", admin_key)
        page.click("#signin-form button[type=submit]")
        page.wait_for_url(re.compile(r"#/jobs$"))
        page.locator("#job-list table, #job-list .empty").first.wait_for()

    with stage(page, screenshots, "03-upload-rejected"):
        broken = tmp_path / "broken.jsonl"
        broken.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
                          '{"messages": [{"role": "user", "content": "unterminated"\n')
        page.click("nav a[data-section=datasets]")
        page.fill("#upload-form input[name=model]", "tiny-r1")  # the form proposes smollm2-135m
        page.set_input_files("#upload-form input[type=file]", str(broken))
        page.click("#upload-form button[type=submit]")
        page.locator("#upload-status .error").wait_for()
        assert "nothing was stored" in page.inner_text("#upload-status .error")
        issues = page.inner_text("#upload-status #report table")
        assert "2" in issues  # the broken line's number is shown beside its issue

    with stage(page, screenshots, "04-dataset"):
        page.set_input_files("#upload-form input[type=file]", str(SAMPLE))
        page.click("#upload-form button[type=submit]")
        page.wait_for_url(re.compile(r"#/datasets/ds-"), timeout=60_000)
        page.locator("#report").wait_for()
        page.locator("#preview pre.spans .span-trained").first.wait_for(timeout=60_000)
        assert "brokerage_support.jsonl" in page.inner_text("h1")

    with stage(page, screenshots, "05-job-running"):
        page.click("nav a[data-section=jobs]")
        page.locator("#job-dataset option").first.wait_for(state="attached")
        page.fill("#job-form input[name=base_model]", "tiny-r1")  # the form proposes smollm2-135m
        page.select_option("#job-form select[name=method]", "full")
        page.fill("#job-form input[name=max_steps]", "12")
        page.fill("#job-form input[name=logging_steps]", "1")
        page.fill("#job-form input[name=batch_size]", "2")
        page.fill("#job-form input[name=suffix]", "support-bot")
        page.click("#job-form button[type=submit]")
        page.wait_for_url(re.compile(r"#/jobs/job-"))
        job_url = page.url
        loss_points = page.locator("figure[data-chart=loss] circle.point")
        loss_points.first.wait_for(timeout=180_000)
        seen = points(page, "loss")
        assert page.locator("#job-summary .badge-running").count() == 1, "the job ended before a second look"
        loss_points.nth(seen).wait_for(timeout=60_000)  # one more point than at the first look
        assert points(page, "loss") > seen

    with stage(page, screenshots, "06-job-succeeded"):
        # training, then the evaluation: both models answer all 23 validation questions, and the random
        # tiny model never stops before the budget (1.5x the longest reference)
        page.locator("#job-summary .badge-succeeded").wait_for(timeout=600_000)
        page.locator("figure[data-chart=loss] circle.point").nth(11).wait_for()  # the last poll drawn
        assert points(page, "loss") == 12 and points(page, "learning_rate") == 12
        assert page.locator("#events li").count() >= 5
        assert page.is_disabled("#cancel-job")
    # A second, shorter run of the same data (its validation loss is worse), trained while the test goes on.
    second = start_job(ui_server, admin_key, max_steps=2)

    with stage(page, screenshots, "07-model-promoted"):
        page.click("#job-summary a[href^='#/models/support-bot']")
        page.locator("#promote-form").wait_for()
        assert "support-bot:1" in page.inner_text("#version-detail h2")
        # The job's evaluation: the fact hit among the metrics, and three of its examples (of every one generated).
        assert "fact_hit" in page.inner_text("#evaluation table")
        examples = page.locator("#evaluation-examples .eval-example")
        assert examples.count() == 3 and "Examples (3 of " in page.inner_text("#evaluation-examples h3")
        first = examples.first.inner_text()
        for label in ("Question", "Reference answer", "Base model's answer", "Fine-tune's answer", "ROUGE-L"):
            assert label in first, first
        assert examples.first.locator("p").nth(1).inner_text() in ANSWERS  # the reference, as text, from the data
        page.fill("#alias-name", "production")
        page.click("#promote-form button[type=submit]")
        page.locator("#alias-status .ok").wait_for()
        page.locator("#model-head table").filter(has_text="support-bot@production").first.wait_for()
        assert "support-bot@production" in page.inner_text("#model-head")
        assert "production" in page.inner_text("#model-head table")

    with stage(page, screenshots, "08-playground"):
        page.goto(f"{ui_server}/ui#/playground/support-bot@production")
        page.fill("#chat-input", "How do I reset my trading password?")
        page.click("#chat-send")
        page.locator(".turn-status[data-done=true]").wait_for(timeout=120_000)
        streamed = page.inner_text("#conversation .turn.assistant")
        assert page.locator("#conversation .turn.assistant .error").count() == 0, streamed
        assert "length" in streamed or "stop" in streamed  # the finish reason of a completed stream

    with stage(page, screenshots, "09-promotion-refused"):
        assert wait_for_job(ui_server, admin_key, second)["fine_tuned_model"] == "support-bot:2"
        page.goto(f"{ui_server}/ui#/models/support-bot/2")
        page.locator("#promote-form").wait_for()
        page.fill("#alias-name", "production")
        page.click("#promote-form button[type=submit]")
        page.locator("#alias-status .error").wait_for()
        refusal = page.inner_text("#alias-status .error")
        assert "409 promotion_blocked" in refusal and "support-bot@production" in refusal, refusal

    with stage(page, screenshots, "10-rolled-back"):
        page.check("#promote-form input[name=force]")
        page.click("#promote-form button[type=submit]")
        page.locator("#alias-status .ok").filter(has_text="overridden").wait_for()
        page.click("#model-head button:has-text('Roll back to v1')")
        page.locator("#alias-status .ok").filter(has_text="Rolled back").wait_for()
        page.locator("#model-history").filter(has_text="alias_moved").wait_for()
        assert "support-bot@production" in page.inner_text("#model-head table")
        assert "v1" in page.inner_text("#model-head table tbody tr:first-child")
        assert "alias_moved" in page.inner_text("#model-history")

    with stage(page, screenshots, "11-alerts"):
        page.click("nav a[data-section=alerts]")
        page.locator("#alert-list table, #alert-list .empty").first.wait_for()

    with stage(page, screenshots, "12-chinese"):
        page.goto(job_url)  # the job's page, with its charts
        page.locator("figure[data-chart=loss]").wait_for()
        page.click("#language")
        page.locator("nav a[data-section=models]").filter(has_text="模型").wait_for()
        # the page renders again in the new language: wait for the charts to come back, then read them
        page.locator("#charts").filter(has_text="训练损失").wait_for()
        assert "训练损失" in page.inner_text("#charts")
        assert page.inner_text("#language") == "English"

    with stage(page, screenshots, "13-jobs-chinese"):
        page.click("nav a[data-section=jobs]")
        page.locator("#job-list table").filter(has_text="成功").wait_for()
        assert "开始训练" in page.inner_text("#job-form") and "成功" in page.inner_text("#job-list")

    with stage(page, screenshots, "14-models-chinese"):
        page.click("nav a[data-section=models]")
        page.locator("#model-list").filter(has_text="基础模型").filter(has_text="production → v1").wait_for()
        assert "production → v1" in page.inner_text("#model-list") and "基础模型" in page.inner_text("#model-list")

    with stage(page, screenshots, "15-signed-out"):
        page.click("#sign-out")
        page.locator("#signin-form").wait_for()
        assert page.evaluate("sessionStorage.length") == 0

    assert page.script_errors == []


def test_a_grpo_jobs_page_charts_reward_and_completion_length(page, ui_server, ui_server_env, admin_key):
    """A GRPO job's metrics (reward_mean, completion_length: llmft/train/rl_health.py) get their charts beside
    the loss; a supervised job's page has none. The jobs are written to the server's database as a GRPO
    trainer's events would be."""
    from llmft.auth.keys import authenticate
    from llmft.db.session import session_scope
    from llmft.db.tables import Job, JobEvent, now

    with session_scope(f"sqlite:///{Path(ui_server_env['LLMFT_HOME']) / 'llmft.db'}") as session:
        tenant = authenticate(session, admin_key).tenant_id
        ids = {}
        for method in ("grpo", "full"):
            job = Job(tenant_id=tenant, status="succeeded", base_model="tiny-r1", method=method, hyperparameters={},
                      seed=1, metadata_={}, config={}, progress={}, finished_at=now())
            session.add(job)
            session.flush()
            ids[method] = job.id
            for step in range(1, 6):
                health = {"reward_mean": 0.1 * step, "reward_std": 0.3, "zero_variance_share": 0.25,
                          "clipped_share": 0.1, "completion_length": 120.0 - 5 * step} if method == "grpo" else {}
                session.add(JobEvent(job_id=job.id, tenant_id=tenant, type="metrics", message=f"step {step}",
                                     data={"step": step, "loss": 0.05, "learning_rate": 1e-5, **health}))
    page.goto(f"{ui_server}/ui")
    page.fill("#api-key", admin_key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_url(re.compile(r"#/jobs$"))
    page.goto(f"{ui_server}/ui#/jobs/{ids['grpo']}")
    page.locator("figure[data-chart=completion_length] circle.point").nth(4).wait_for()
    assert points(page, "reward_mean") == 5 and points(page, "completion_length") == 5 and points(page, "loss") == 5
    charts = page.inner_text("#charts")
    assert "Mean reward" in charts and "Completion length (tokens)" in charts and "0.5" in charts  # the latest reward
    page.goto(f"{ui_server}/ui#/jobs/{ids['full']}")
    page.locator("figure[data-chart=loss] circle.point").nth(4).wait_for()
    assert page.locator("figure[data-chart=reward_mean]").count() == 0
    assert page.script_errors == []


def start_job(server: str, key: str, *, max_steps: int) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    dataset = requests.get(f"{server}/api/v1/datasets", headers=headers, timeout=30).json()["data"][0]["id"]
    body = {"dataset_id": dataset, "method": "full", "suffix": "support-bot",
            "hyperparameters": {"max_steps": max_steps, "batch_size": 2, "logging_steps": 1}}
    response = requests.post(f"{server}/api/v1/jobs", json=body, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_for_job(server: str, key: str, job_id: str, timeout: float = 600) -> dict:
    deadline = time.time() + timeout
    while True:
        job = requests.get(f"{server}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            assert job["status"] == "succeeded", job
            return job
        assert time.time() < deadline, job
        time.sleep(1)
