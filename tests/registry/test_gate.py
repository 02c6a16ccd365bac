"""The promotion gate with grader metrics: an evaluation report's grader.NAME keys become the version's metrics,
PROMOTION_GATE names them (`grader.total:max`), and a version that computes worse cannot take production.
Names that no evaluation reports are refused when the settings load."""


import pytest

from llmft.auth.keys import authenticate, create_key
from llmft.config import ConfigError
from llmft.db.session import session_scope
from llmft.db.tables import Dataset, Job
from llmft.errors import Conflict
from llmft.registry import service
from llmft.settings import load_settings
from tests.registry.test_service import SUMMARY, final_dir


def register(url, principal, tmp_path, name: str, candidate: dict) -> int:
    with session_scope(url) as session:
        dataset = Dataset(tenant_id=principal.tenant_id, filename="d.jsonl", stored_name="x.jsonl", bytes=1,
                          sha256="ef" * 32, examples=1, report={})
        session.add(dataset)
        session.flush()
        job = Job(tenant_id=principal.tenant_id, status="running", base_model="tiny-r1", dataset_id=dataset.id,
                  method="lora", hyperparameters={}, seed=1, metadata_={}, suffix="calc",
                  config={"data": {"think_mode": "mask"}})
        session.add(job)
        session.flush()
        version = service.register_version(session, job=job, final_dir=final_dir(tmp_path, name), home=tmp_path,
                                           summary=SUMMARY, evaluation={"candidate": candidate})
        return version.version


def test_a_grader_metric_gates_production(database_url, tmp_path):
    with session_scope(database_url) as session:
        key, _ = create_key(session, tenant="acme", role="admin")
        alice = authenticate(session, key)
    gate = service.Gate.from_settings(load_settings(llmft_home=tmp_path,
                                                    promotion_gate="grader.total:max,grader.total.budget_256:max"))
    assert gate.metrics == (("grader.total", "max"), ("grader.total.budget_256", "max"))
    good = register(database_url, alice, tmp_path, "a", {"grader.total": 0.8, "grader.total.budget_256": 0.5,
                                                         "eos_rate": 1.0, "closed_think_rate": 1.0})
    worse = register(database_url, alice, tmp_path, "b", {"grader.total": 0.6, "grader.total.budget_256": 0.7})
    better = register(database_url, alice, tmp_path, "c", {"grader.total": 0.9, "grader.total.budget_256": 0.5})
    with session_scope(database_url) as session:
        described = service.describe_model(session, service.get_model(session, principal=alice, name="calc"))
        assert described["versions"][0]["metrics"]["grader.total"] == 0.8  # the report's key, as the gate names it
        service.set_alias(session, principal=alice, name="calc", alias="production", version=good, gate=gate)
    with session_scope(database_url) as session, pytest.raises(Conflict) as blocked:
        service.set_alias(session, principal=alice, name="calc", alias="production", version=worse, gate=gate)
    assert blocked.value.code == "promotion_blocked"
    assert [f["metric"] for f in blocked.value.details["failures"]] == ["grader.total"]
    assert "grader.total 0.6 vs 0.8 (higher is better)" in blocked.value.message
    with session_scope(database_url) as session:
        moved = service.set_alias(session, principal=alice, name="calc", alias="production", version=better, gate=gate)
    assert moved["override"] is False and moved["previous"] == good


@pytest.mark.parametrize("gate", ["grader.Total:max", "grader.:max", "grader.total.pass@:max",
                                  "grader.total.best:max", "grader.total:most"])
def test_a_grader_metric_no_evaluation_reports_is_refused_naming_the_setting(gate, tmp_path):
    with pytest.raises(ConfigError, match="PROMOTION_GATE"):
        load_settings(llmft_home=tmp_path, promotion_gate=gate)


def test_job_eval_graders_must_name_a_file(tmp_path):
    with pytest.raises(ConfigError, match="JOB_EVAL_GRADERS.*no such file"):
        load_settings(llmft_home=tmp_path, job_eval_graders=tmp_path / "missing.yaml")
    spec = tmp_path / "graders.yaml"
    spec.write_text("- {name: total, type: numeric}\n")
    assert load_settings(llmft_home=tmp_path, job_eval_graders=spec).job_eval_graders == spec
