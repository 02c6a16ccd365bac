"""Deleting a dataset on real databases: a tombstone keeps the lineage, the file and the prepared data go, a job
that reads it makes it a 409, and (PostgreSQL) a deletion racing a job's creation cannot leave the job without
its file."""

import json
import threading
import time

import pytest

from llmft.auth.keys import authenticate, create_key
from llmft.data.service import delete_dataset, get_dataset, list_datasets
from llmft.db.session import session_scope
from llmft.db.tables import Dataset, Job
from llmft.errors import Conflict, NotFound


@pytest.fixture
def alice(database_url):
    with session_scope(database_url) as session:
        key, _ = create_key(session, tenant="acme", role="admin")
        return authenticate(session, key)


def stored(url, principal, uploads, sha256="ab" * 32) -> str:
    with session_scope(url) as session:
        dataset = Dataset(tenant_id=principal.tenant_id, filename="d.jsonl", stored_name="placeholder", bytes=3,
                          sha256=sha256, examples=1, report={"samples": ["the content"]})
        session.add(dataset)
        session.flush()
        dataset.stored_name = f"{dataset.id}.jsonl"
        (uploads / principal.tenant_id).mkdir(parents=True, exist_ok=True)
        (uploads / principal.tenant_id / dataset.stored_name).write_text("{}\n")
        return dataset.id


def job_on(session, principal, dataset_id, status="queued") -> Job:
    job = Job(tenant_id=principal.tenant_id, status=status, base_model="tiny-r1", dataset_id=dataset_id,
              method="lora", hyperparameters={}, seed=1, metadata_={}, config={})
    session.add(job)
    session.flush()
    return job


def prepared_entry(home, key, sha256):
    folder = home / "cache" / "prepared" / key
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"sources": [{"name": "d.jsonl", "sha256": sha256}]}))
    return folder


def test_a_used_dataset_becomes_a_tombstone_and_its_content_goes(database_url, alice, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFT_HOME", str(tmp_path))
    uploads = tmp_path / "uploads"
    dataset_id, twin_id = stored(database_url, alice, uploads), stored(database_url, alice, uploads, sha256="cd" * 32)
    stored(database_url, alice, uploads, sha256="cd" * 32)  # the same bytes again: their prepared data stays
    mine, theirs = prepared_entry(tmp_path, "k1", "ab" * 32), prepared_entry(tmp_path, "k2", "cd" * 32)
    with session_scope(database_url) as session:
        job = job_on(session, alice, dataset_id, status="running")
    with session_scope(database_url) as session, pytest.raises(Conflict) as busy:
        delete_dataset(session, principal=alice, dataset_id=dataset_id, uploads_dir=uploads)
    assert busy.value.code == "dataset_in_use" and busy.value.details == {"jobs": [job.id]}
    with session_scope(database_url) as session:
        session.get(Job, job.id).status = "paused"  # resumed, it reads the file again
    with session_scope(database_url) as session, pytest.raises(Conflict, match="paused"):
        delete_dataset(session, principal=alice, dataset_id=dataset_id, uploads_dir=uploads)
    with session_scope(database_url) as session:
        session.get(Job, job.id).status = "succeeded"
    with session_scope(database_url) as session:
        delete_dataset(session, principal=alice, dataset_id=dataset_id, uploads_dir=uploads)
        delete_dataset(session, principal=alice, dataset_id=twin_id, uploads_dir=uploads)
    assert not mine.exists() and theirs.exists()
    assert sorted(p.name for p in (uploads / alice.tenant_id).iterdir()) == \
        sorted(f"{i}.jsonl" for i in {*_live(database_url, alice)})
    with session_scope(database_url) as session:
        tombstone = session.get(Dataset, dataset_id)
        assert (tombstone.filename, tombstone.sha256, tombstone.report) == ("d.jsonl", "ab" * 32, {})
        assert tombstone.deleted_at is not None and session.get(Job, job.id).dataset_id == dataset_id
        with pytest.raises(NotFound, match="was deleted"):
            get_dataset(session, principal=alice, dataset_id=dataset_id)
        with pytest.raises(NotFound):
            delete_dataset(session, principal=alice, dataset_id=dataset_id, uploads_dir=uploads)
    assert dataset_id not in _live(database_url, alice) and len(_live(database_url, alice)) == 1


def _live(url, principal) -> list[str]:
    with session_scope(url) as session:
        return [d.id for d in list_datasets(session, principal=principal, limit=100)]


@pytest.mark.postgres
def test_a_deletion_racing_a_new_job_waits_for_it_and_answers_409(postgres_url, reset_postgres, tmp_path):
    from llmft.db.session import create_schema

    reset_postgres(postgres_url)
    create_schema(postgres_url)
    with session_scope(postgres_url) as session:
        key, _ = create_key(session, tenant="acme", role="admin")
        alice = authenticate(session, key)
    dataset_id = stored(postgres_url, alice, tmp_path)
    outcome = {}

    def delete():
        try:
            with session_scope(postgres_url) as session:
                delete_dataset(session, principal=alice, dataset_id=dataset_id, uploads_dir=tmp_path)
            outcome["deleted"] = True
        except Conflict as error:
            outcome["conflict"] = error.details["jobs"]
        except Exception as error:  # shown by the assertions below
            outcome["error"] = repr(error)

    with session_scope(postgres_url) as session:  # what create_job does: read the dataset (shared lock), add a job
        get_dataset(session, principal=alice, dataset_id=dataset_id, lock="share")
        job = job_on(session, alice, dataset_id)
        deleter = threading.Thread(target=delete)
        deleter.start()
        time.sleep(1.0)
        assert deleter.is_alive(), outcome  # waiting for the job's transaction
    deleter.join(timeout=30)
    assert outcome == {"conflict": [job.id]}
    assert (tmp_path / alice.tenant_id / f"{dataset_id}.jsonl").is_file()
