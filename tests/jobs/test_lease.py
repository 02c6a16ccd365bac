"""Leases on real databases: one claimer wins, stale tokens write nothing, the reaper requeues; a paused
attempt gives its count back, and a job lost while pausing is paused, not requeued."""

import threading
from datetime import timedelta

from llmft.auth.keys import create_key
from llmft.db.session import session_scope
from llmft.db.tables import Dataset, Job, JobEvent, now
from llmft.jobs.lease import claim, finish, heartbeat, pause, reap, start_attempt


def new_job(url, max_attempts=2) -> str:
    with session_scope(url) as session:
        _, key = create_key(session, tenant=f"t-{now().timestamp()}", role="member")
        dataset = Dataset(tenant_id=key.tenant_id, filename="d.jsonl", stored_name="x.jsonl", bytes=1, sha256="0" * 64,
                          examples=1, report={})
        session.add(dataset)
        session.flush()
        job = Job(tenant_id=key.tenant_id, status="queued", base_model="tiny-r1", dataset_id=dataset.id, method="lora",
                  hyperparameters={}, seed=1, metadata_={}, config={}, max_attempts=max_attempts)
        session.add(job)
        session.flush()
        return job.id


def test_only_one_of_many_concurrent_claimers_wins(database_url):
    job_id = new_job(database_url)
    tokens, barrier = [], threading.Barrier(6)

    def contender(name):
        barrier.wait()
        with session_scope(database_url) as session:
            tokens.append(claim(session, job_id=job_id, owner=name, lease_seconds=60))

    threads = [threading.Thread(target=contender, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(tokens, key=str) == [1] + [None] * 5
    with session_scope(database_url) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.fencing_token) == ("running", 0, 1)  # counted when a trainer starts


def test_a_stale_token_cannot_heartbeat_or_finish(database_url):
    job_id = new_job(database_url)
    with session_scope(database_url) as session:
        first = claim(session, job_id=job_id, owner="a", lease_seconds=60, at=now() - timedelta(seconds=120))
    with session_scope(database_url) as session:
        second = claim(session, job_id=job_id, owner="b", lease_seconds=60)  # a's lease expired
    assert (first, second) == (1, 2)
    with session_scope(database_url) as session:
        assert start_attempt(session, job_id=job_id, token=first) is False
        assert start_attempt(session, job_id=job_id, token=second) is True
        assert heartbeat(session, job_id=job_id, token=first, lease_seconds=60) is False
        assert finish(session, job_id=job_id, token=first, status="succeeded") is False
        assert heartbeat(session, job_id=job_id, token=second, lease_seconds=60) is True
        assert finish(session, job_id=job_id, token=second, status="succeeded") is True
    with session_scope(database_url) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.lease_owner, job.attempts) == ("succeeded", None, 1)


def test_a_live_lease_is_not_claimed_again_and_a_redelivery_starts_nothing(database_url):
    job_id = new_job(database_url)
    with session_scope(database_url) as session:
        assert claim(session, job_id=job_id, owner="a", lease_seconds=60) == 1
    with session_scope(database_url) as session:
        assert claim(session, job_id=job_id, owner="a-redelivered", lease_seconds=60) is None


def test_reaper_requeues_then_fails_after_max_attempts(database_url):
    job_id = new_job(database_url, max_attempts=2)
    past = now() - timedelta(seconds=120)
    with session_scope(database_url) as session:
        token = claim(session, job_id=job_id, owner="a", lease_seconds=60, at=past)
        start_attempt(session, job_id=job_id, token=token)
    with session_scope(database_url) as session:
        assert reap(session) == [job_id]
    with session_scope(database_url) as session:
        assert session.get(Job, job_id).status == "queued"
        token = claim(session, job_id=job_id, owner="b", lease_seconds=60, at=past)
        start_attempt(session, job_id=job_id, token=token)
    with session_scope(database_url) as session:
        assert reap(session) == []
    with session_scope(database_url) as session:
        job = session.get(Job, job_id)
        assert job.status == "failed" and job.error["code"] == "worker_lost"
        types = [e.type for e in session.query(JobEvent).filter_by(job_id=job_id).order_by(JobEvent.id)]
    assert types == ["running", "requeued", "running", "failed"]


def test_a_claim_whose_trainer_never_started_uses_no_attempt(database_url):
    job_id = new_job(database_url, max_attempts=2)
    past = now() - timedelta(seconds=120)
    for owner in ("lost-1", "lost-2", "lost-3"):  # three workers gone before their trainer started
        with session_scope(database_url) as session:
            assert claim(session, job_id=job_id, owner=owner, lease_seconds=60, at=past) is not None
        with session_scope(database_url) as session:
            assert reap(session) == [job_id]
    with session_scope(database_url) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.fencing_token) == ("queued", 0, 3)


def test_reapers_of_several_workers_requeue_an_expired_job_once(database_url):
    job_id = new_job(database_url, max_attempts=3)
    with session_scope(database_url) as session:
        claim(session, job_id=job_id, owner="lost", lease_seconds=60, at=now() - timedelta(seconds=120))
    requeued, barrier = [], threading.Barrier(4)

    def reaper():
        barrier.wait()
        with session_scope(database_url) as session:
            requeued.extend(reap(session))

    threads = [threading.Thread(target=reaper) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert requeued == [job_id]
    with session_scope(database_url) as session:
        assert session.query(JobEvent).filter_by(job_id=job_id, type="requeued").count() == 1


def test_cancelled_jobs_are_never_claimed(database_url):
    job_id = new_job(database_url)
    with session_scope(database_url) as session:
        session.get(Job, job_id).cancel_requested = True
    with session_scope(database_url) as session:
        assert claim(session, job_id=job_id, owner="a", lease_seconds=60) is None


def test_a_paused_attempt_gives_its_count_back_and_a_pausing_job_is_not_claimed(database_url):
    job_id = new_job(database_url, max_attempts=1)
    with session_scope(database_url) as session:
        token = claim(session, job_id=job_id, owner="a", lease_seconds=60, at=now() - timedelta(seconds=120))
        start_attempt(session, job_id=job_id, token=token)
        session.get(Job, job_id).pause_requested = True
    with session_scope(database_url) as session:  # its lease expired, but a pausing job is the reaper's
        assert claim(session, job_id=job_id, owner="b", lease_seconds=60) is None
        assert pause(session, job_id=job_id, token=token + 1, attempts=0, step=4) is False  # a stale token
        assert pause(session, job_id=job_id, token=token, attempts=0, step=4) is True
    with session_scope(database_url) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.lease_owner, job.pause_requested) == ("paused", 0, None, True)
        paused = session.query(JobEvent).filter_by(job_id=job_id, type="paused").one()
        assert paused.data == {"step": 4} and "at step 4" in paused.message
        job.status, job.pause_requested = "queued", False  # resumed (service.resume_job)
    with session_scope(database_url) as session:  # the one attempt of max_attempts 1 is still there
        assert claim(session, job_id=job_id, owner="c", lease_seconds=60) == token + 1


def test_the_reaper_pauses_a_job_lost_while_pausing_and_gives_its_attempt_back(database_url):
    job_id = new_job(database_url, max_attempts=1)
    with session_scope(database_url) as session:
        token = claim(session, job_id=job_id, owner="lost", lease_seconds=60, at=now() - timedelta(seconds=120))
        start_attempt(session, job_id=job_id, token=token)
        session.get(Job, job_id).pause_requested = True
    with session_scope(database_url) as session:
        assert reap(session) == []  # not requeued: it waits for its resume
    with session_scope(database_url) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts, job.lease_owner, job.finished_at) == ("paused", 0, None, None)
        assert session.query(JobEvent).filter_by(job_id=job_id, type="paused").one().level == "warning"
        assert finish(session, job_id=job_id, token=token, status="failed") is False  # the lost runner, back late


def test_a_job_that_ends_while_pausing_forgets_the_pause(database_url):
    job_id = new_job(database_url)
    with session_scope(database_url) as session:
        token = claim(session, job_id=job_id, owner="a", lease_seconds=60)
        session.get(Job, job_id).pause_requested = True
    with session_scope(database_url) as session:
        assert finish(session, job_id=job_id, token=token, status="succeeded") is True
    with session_scope(database_url) as session:
        assert (session.get(Job, job_id).status, session.get(Job, job_id).pause_requested) == ("succeeded", False)


def test_a_requeue_of_a_pausing_job_pauses_it(database_url):
    """A worker shutting down requeues its job; a pause asked for meanwhile keeps it out of the queue."""
    job_id = new_job(database_url)
    with session_scope(database_url) as session:
        token = claim(session, job_id=job_id, owner="a", lease_seconds=60)
        session.get(Job, job_id).pause_requested = True
    with session_scope(database_url) as session:
        assert finish(session, job_id=job_id, token=token, status="queued", requeue=True) is True
    with session_scope(database_url) as session:
        assert session.get(Job, job_id).status == "paused"
        assert [e.type for e in session.query(JobEvent).filter_by(job_id=job_id).order_by(JobEvent.id)] == [
            "running", "paused"]
        assert claim(session, job_id=job_id, owner="b", lease_seconds=60) is None
