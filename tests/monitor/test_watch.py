"""Each alert rule on real events and a real database, and the webhook delivery with retries."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from llmft.auth.keys import authenticate, create_key
from llmft.db.session import session_scope
from llmft.db.tables import Alert, Job, JobEvent, Tenant, now
from llmft.monitor import alerts
from llmft.monitor.alerts import AlertRules, alerts_of, notifier, raise_alert, update_alert_settings
from llmft.monitor.watch import TrainingWatch, check_service
from llmft.settings import load_settings


def watch(**rules):
    fired = []
    return TrainingWatch(AlertRules(**rules), lambda *args: fired.append(args), job_id="job-1"), fired


def test_loss_spike_against_the_moving_average():
    w, fired = watch(loss_spike_factor=3.0, loss_spike_min_steps=3)
    for step, loss in enumerate([2.0, 2.1, 1.9, 5.0, 2.0, 9.0], start=1):
        w({"type": "metrics", "step": step, "loss": loss})
    assert [(f[0], f[4]["step"]) for f in fired] == [("loss_spike", 6)]  # 5.0 < 3 x 2.0; 9.0 > 3 x 2.6
    assert fired[0][1] == "warning" and "moving average" in fired[0][2]


def test_no_spike_before_min_steps_and_none_from_a_nan():
    w, fired = watch(loss_spike_min_steps=5)
    for step, loss in enumerate([1.0, 50.0, None, float("nan")], start=1):
        w({"type": "metrics", "step": step, "loss": loss})
    assert fired == []


def test_validation_loss_rising_k_times_in_a_row():
    w, fired = watch(eval_rising_evaluations=2)
    for step, loss in [(10, 2.0), (20, 2.1), (30, 2.0), (40, 2.2), (50, 2.3)]:
        w({"type": "eval", "step": step, "eval_loss": loss})
    assert [(f[0], f[4]["eval_losses"]) for f in fired] == [("eval_rising", [2.0, 2.2, 2.3])]


def test_gpu_memory_above_its_threshold_fires_once():
    w, fired = watch(gpu_memory_fraction=0.9)
    for step, fraction in [(1, 0.5), (2, 0.93), (3, 0.97)]:
        w({"type": "metrics", "step": step, "loss": 1.0, "gpu_memory_fraction": fraction})
    assert [(f[0], f[4]["step"]) for f in fired] == [("gpu_memory", 2)]


def test_nan_loss_is_critical_and_names_the_last_good_checkpoint():
    w, fired = watch()
    w({"type": "nan_loss", "step": 7, "last_good_checkpoint": "checkpoint-6"})
    assert fired[0][0:2] == ("nan_loss", "critical") and "checkpoint-6" in fired[0][2]


def grpo_log(step, *, reward=None, clipped=0.0, flat=0.1, length=100.0):
    """A GRPO training log as the trainer's events carry it (llmft/train/rl_health.py names)."""
    reward = 0.1 + 0.02 * step if reward is None else reward
    return {"type": "metrics", "step": step, "loss": 0.01, "reward_mean": reward, "reward_std": 0.3,
            "zero_variance_share": flat, "clipped_share": clipped, "completion_length": length, "kl": 0.001}


def test_rl_rules_stay_quiet_on_a_healthy_grpo_run_and_a_supervised_one():
    w, fired = watch(rl_reward_flat_steps=3, rl_length_early_steps=2)
    for step in range(1, 30):  # reward rising, lengths steady, little clipped, most groups varying
        w(grpo_log(step, clipped=0.1, flat=0.3, length=100.0 + (step % 3)))
    for step in range(30, 40):
        w({"type": "metrics", "step": step, "loss": 0.01})
    assert fired == []


def test_clipped_share_fires_when_it_passes_its_threshold_and_again_after_it_cleared():
    w, fired = watch(rl_clipped_share=0.5)
    for step, clipped in enumerate([0.2, 0.6, 0.9, 0.7, 0.3, 0.8], start=1):
        w(grpo_log(step, clipped=clipped))
    assert [(f[0], f[4]["step"]) for f in fired] == [("rl_clipped", 2), ("rl_clipped", 6)]
    assert fired[0][1] == "warning" and "60% of completions were clipped" in fired[0][2]
    assert fired[0][3] == "rl_clipped:job-1:2" and fired[0][4]["clipped_share"] == 0.6


def test_zero_variance_share_above_its_threshold():
    w, fired = watch(rl_zero_variance_share=0.75)
    for step, flat in enumerate([0.5, 0.75, 1.0, None, 1.0], start=1):
        w(grpo_log(step, flat=flat))
    assert [(f[0], f[4]["step"]) for f in fired] == [("rl_zero_variance", 3)]  # 0.75 is not above 0.75
    assert "did not vary" in fired[0][2]


def test_completion_length_collapsing_below_a_fraction_of_its_early_value():
    w, fired = watch(rl_length_early_steps=3, rl_length_collapse_fraction=0.5)
    for step, length in enumerate([120.0, 100.0, 80.0, 70.0, 55.0, 49.0, 30.0], start=1):
        w(grpo_log(step, length=length))
    assert [(f[0], f[4]["step"]) for f in fired] == [("rl_length_collapse", 6)]  # below half of 100
    assert fired[0][4]["early_length"] == 100.0 and "fell to 49 tokens" in fired[0][2]


def test_reward_flat_for_n_logged_steps():
    w, fired = watch(rl_reward_flat_steps=4, rl_reward_flat_tolerance=0.01)
    for step, reward in enumerate([0.1, 0.2, 0.3, 0.3, 0.305, 0.3, 0.3, 0.5], start=1):
        w(grpo_log(step, reward=reward))
    assert [(f[0], f[4]["step"]) for f in fired] == [("rl_reward_flat", 6)]
    assert "stayed at 0.3" in fired[0][2] and fired[0][4]["steps"] == 4
    w2, fired2 = watch(rl_reward_flat_steps=3)
    for step in range(1, 4):  # every reward 0: the clipped-at-max-length failure
        w2(grpo_log(step, reward=0.0))
    assert [f[0] for f in fired2] == ["rl_reward_flat"]


@pytest.fixture
def tenant_job(database_url, tmp_path):
    settings = load_settings(llmft_home=tmp_path, database_url=database_url, webhook_allow_private=True)  # receivers
    with session_scope(database_url) as session:
        principal = authenticate(session, create_key(session, tenant="acme", role="admin")[0])
        job = Job(tenant_id=principal.tenant_id, status="running", base_model="tiny-r1", method="full",
                  hyperparameters={}, seed=1, metadata_={}, config={}, progress={})
        session.add(job)
        session.flush()
        job_id = job.id
    return settings, principal, job_id


def test_service_rules_stalled_failed_and_disk_fire_once_each(tenant_job, receiver, monkeypatch):
    settings, principal, job_id = tenant_job
    settings = settings.model_copy(update={"alert_disk_free_fraction": 1.0, "alert_webhooks": receiver.url})
    with session_scope(settings.sqlalchemy_url) as session:
        update_alert_settings(session, tenant_id=principal.tenant_id, webhooks=None, rules={"stalled_minutes": 5},
                              allow_private=False)
        job = session.get(Job, job_id)
        session.add(JobEvent(job_id=job.id, tenant_id=job.tenant_id, type="metrics", message="m", data={},
                             created_at=now() - timedelta(minutes=6)))
        failed = Job(tenant_id=job.tenant_id, status="failed", base_model="tiny-r1", method="full", hyperparameters={},
                     seed=1, metadata_={}, config={}, progress={}, finished_at=now(),
                     error={"code": "training_failed", "message": "the trainer exited with code 1"})
        session.add(failed)
    for _ in range(2):  # a second round (or a second worker) raises nothing new
        with session_scope(settings.sqlalchemy_url) as session:
            check_service(session, settings)
    notifier.flush()
    with session_scope(settings.sqlalchemy_url) as session:
        rows = session.scalars(select(Alert).order_by(Alert.rule)).all()
        assert sorted(a.rule for a in rows) == ["disk_full", "job_failed", "stalled"]
        by_rule = {a.rule: a for a in rows}
        assert by_rule["stalled"].job_id == job_id and by_rule["disk_full"].tenant_id is None
        assert "exited with code 1" in by_rule["job_failed"].message
        assert all(a.notified_at is not None and a.notify_error is None for a in rows)
        events = session.scalars(select(JobEvent.type).where(JobEvent.job_id == job_id)).all()
        assert "alert" in events
        member_view = alerts_of(session, tenant_id=principal.tenant_id, include_service=False)
        assert {a.rule for a in member_view} == {"stalled", "job_failed"}
        other = session.scalar(select(Tenant.id).where(Tenant.name != "acme"))
        assert other is None or alerts_of(session, tenant_id=other, include_service=False) == []
    texts = sorted(payload["text"] for payload in receiver.received)
    assert len(texts) == 3 and all(text.startswith("[llmft] ") for text in texts)
    assert {payload["alert"]["rule"] for payload in receiver.received} == {"stalled", "job_failed", "disk_full"}


def test_webhooks_are_retried_then_marked(tenant_job, flaky_receiver, monkeypatch):
    settings, principal, job_id = tenant_job
    monkeypatch.setattr(alerts, "FIRST_BACKOFF", 0.05)
    with session_scope(settings.sqlalchemy_url) as session:
        update_alert_settings(session, tenant_id=principal.tenant_id,
                              webhooks=[flaky_receiver.url, "http://127.0.0.1:9/closed"], rules=None, allow_private=True)
        raise_alert(session, settings=settings, job=session.get(Job, job_id), rule="loss_spike", severity="warning",
                    message="spike", key="loss_spike:x:1", data={"step": 1})
    notifier.flush()
    assert flaky_receiver.attempts == 3 and len(flaky_receiver.received) == 1  # two 503s, then delivered
    with session_scope(settings.sqlalchemy_url) as session:
        alert = session.scalar(select(Alert))
        assert alert.notified_at is not None and alert.notify_error == "http://127.0.0.1:9/***: delivery failed"


def test_alert_settings_are_checked(tenant_job):
    settings, principal, _ = tenant_job
    from llmft.errors import Invalid

    with session_scope(settings.sqlalchemy_url) as session:
        with pytest.raises(Invalid, match="webhooks\\[0\\]"):
            update_alert_settings(session, tenant_id=principal.tenant_id, webhooks=["file:///etc/passwd"], rules=None,
                                  allow_private=False)
        with pytest.raises(Invalid, match="webhooks\\[1\\]: a loopback"):
            update_alert_settings(session, tenant_id=principal.tenant_id, rules=None, allow_private=False,
                                  webhooks=["https://hooks.example/x", "http://0x7f000001:6379/"])
        with pytest.raises(Invalid, match="loss_spike_factr"):
            update_alert_settings(session, tenant_id=principal.tenant_id, webhooks=None, rules={"loss_spike_factr": 2},
                                  allow_private=False)
        saved = update_alert_settings(session, tenant_id=principal.tenant_id, webhooks=["https://hooks.example/x"],
                                      rules={"loss_spike_factor": 5}, allow_private=False)
        assert saved["webhooks"] == ["https://hooks.example/x"] and saved["rules"]["loss_spike_factor"] == 5
        again = update_alert_settings(session, tenant_id=principal.tenant_id, webhooks=None, rules={"stalled_minutes": 2},
                                      allow_private=False)
        assert again["rules"]["loss_spike_factor"] == 5 and again["rules"]["stalled_minutes"] == 2
        with pytest.raises(Invalid, match="rl_clipped_share"):
            update_alert_settings(session, tenant_id=principal.tenant_id, webhooks=None, rules={"rl_clipped_share": 1.5},
                                  allow_private=False)
        rl = update_alert_settings(session, tenant_id=principal.tenant_id, webhooks=None, allow_private=False,
                                   rules={"rl_clipped_share": 0.3, "rl_reward_flat_steps": 10})
        assert rl["rules"]["rl_clipped_share"] == 0.3 and rl["rules"]["rl_zero_variance_share"] == 0.9
        assert alerts.rules_for(session, principal.tenant_id).rl_reward_flat_steps == 10
