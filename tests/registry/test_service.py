"""The registry on real databases: versions with lineage and hashes, aliases, the gate, deletion,
integrity, tenants."""

import json

import pytest
import torch
from safetensors.torch import save_file

from llmft.auth.keys import authenticate, create_key
from llmft.db.session import session_scope
from llmft.db.tables import Dataset, Job
from llmft.errors import Conflict, Invalid, NotFound
from llmft.registry import service
from llmft.registry.artifacts import IntegrityError
from llmft.train.summary import DataSummary, RunSummary

SUMMARY = RunSummary(
    status="succeeded", steps=10, epochs=1.0, first_train_loss=2.6, final_train_loss=2.0, final_eval_loss=2.5,
    best_eval_loss=2.4, best_checkpoint=None, stopped_by=None, tokens_seen=1000, train_runtime_s=20.0,
    tokens_per_second=50.0, processes=1, wall_time_s=21.0, peak_rss_gb=1.0, final_dir="final",
    tokenizer_sha256="ab" * 32, renderer_version="2", config={}, llmft_version="0.1.0", torch_version="2.13.0",
    data=DataSummary(sha256="cd" * 32, sources=[{"name": "d.jsonl", "sha256": "ef" * 32}], folder="prepared",
                     train_examples=9, validation_examples=1))


@pytest.fixture
def tenant(database_url):
    with session_scope(database_url) as session:
        key, _ = create_key(session, tenant="acme", role="admin")
        other, _ = create_key(session, tenant="globex", role="admin")
        return authenticate(session, key), authenticate(session, other)


def final_dir(tmp_path, name="final", scale=1.0):
    folder = tmp_path / name
    folder.mkdir()
    save_file({"lora_A": torch.full((2, 2), scale)}, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({"r": 2, "peft_type": "LORA"}))
    (folder / "tokenizer.json").write_text("{}")
    return folder


def finished_job(url, principal, *, suffix=None, eval_loss=2.5, tmp_path=None, name="final"):
    with session_scope(url) as session:
        dataset = Dataset(tenant_id=principal.tenant_id, filename="d.jsonl", stored_name="x.jsonl", bytes=1,
                          sha256="ef" * 32, examples=1, report={})
        session.add(dataset)
        session.flush()
        job = Job(tenant_id=principal.tenant_id, status="running", base_model="tiny-r1", dataset_id=dataset.id,
                  method="lora", hyperparameters={"num_epochs": 1}, seed=1, metadata_={}, suffix=suffix,
                  config={"data": {"think_mode": "mask"}})
        session.add(job)
        session.flush()
        version = service.register_version(session, job=job, final_dir=final_dir(tmp_path, name), home=tmp_path,
                                           summary=SUMMARY.model_copy(update={"final_eval_loss": eval_loss}),
                                           evaluation={"candidate": {"rouge_l": 0.3, "bleu": 10.0}},
                                           base_revision="sha256:0123")
        return job.id, version.version, job.fine_tuned_model


def test_a_job_becomes_a_version_with_lineage_hashes_and_a_card(database_url, tenant, tmp_path):
    alice, _ = tenant
    job_id, number, ref = finished_job(database_url, alice, tmp_path=tmp_path)
    assert (number, ref) == (1, "tiny-r1-ft:1")
    with session_scope(database_url) as session:
        model, version = service.resolve(session, principal=alice, ref="tiny-r1-ft:1")
        assert version.kind == "adapter" and version.job_id == job_id
        lineage = version.lineage
        assert lineage["base_model"] == "tiny-r1" and lineage["base_revision"] == "sha256:0123"
        assert lineage["datasets"][0]["sha256"] == "ef" * 32 and lineage["data_sha256"] == "cd" * 32
        assert lineage["tokenizer_sha256"] == "ab" * 32 and lineage["renderer_version"] == "2"
        assert lineage["think_mode"] == "mask" and lineage["llmft_version"] and lineage["hyperparameters"]
        assert version.metrics["eval_loss"] == 2.5 and version.metrics["rouge_l"] == 0.3
        assert set(version.files) == {"adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "README.md"}
        assert all(len(meta["sha256"]) == 64 for meta in version.files.values())
        folder = service.verified_folder(tmp_path, version)
        card = (folder / "README.md").read_text()
        assert "# tiny-r1-ft:1" in card and job_id in card and "eval_loss" in card
        # registering the same job again (a retried attempt) returns the same version
        job = session.get(Job, job_id)
        again = service.register_version(session, job=job, final_dir=final_dir(tmp_path, "again"), home=tmp_path,
                                         summary=SUMMARY)
        assert again.id == version.id


def test_aliases_move_roll_back_and_guard_deletion(database_url, tenant, tmp_path):
    alice, bob = tenant
    finished_job(database_url, alice, suffix="bot", eval_loss=2.5, tmp_path=tmp_path, name="a")
    finished_job(database_url, alice, suffix="bot", eval_loss=2.0, tmp_path=tmp_path, name="b")
    with session_scope(database_url) as session:
        service.set_alias(session, principal=alice, name="bot", alias="production", version=1)
        moved = service.set_alias(session, principal=alice, name="bot", alias="production", version=2)
        assert (moved["previous"], moved["override"]) == (1, False)  # 2 is better: the gate lets it through
        assert service.resolve(session, principal=alice, ref="bot@production")[1].version == 2
    with session_scope(database_url) as session:
        with pytest.raises(Conflict) as blocked:
            service.set_alias(session, principal=alice, name="bot", alias="production", version=1)
        assert blocked.value.code == "promotion_blocked"
        assert blocked.value.details["failures"][0]["metric"] == "eval_loss"
    with session_scope(database_url) as session:
        rolled = service.set_alias(session, principal=alice, name="bot", alias="production", version=1, force=True,
                                   reason="roll back: v2 answers in the wrong language")
        assert rolled["override"] is True
        events = service.model_events(session, principal=alice, name="bot")
        assert [e.type for e in events][-1] == "alias_moved" and events[-1].actor == alice.key_id
        assert events[-1].data["reason"].startswith("roll back")
        service.set_alias(session, principal=alice, name="bot", alias="staging", version=1)  # not gated
    with session_scope(database_url) as session:
        with pytest.raises(Conflict, match="production, staging"):
            service.delete_version(session, principal=alice, name="bot", version=1, home=tmp_path)
        service.delete_version(session, principal=alice, name="bot", version=2, home=tmp_path)
        described = service.describe_model(session, service.get_model(session, principal=alice, name="bot"))
        assert [v["version"] for v in described["versions"]] == [1]
        assert described["aliases"] == {"production": 1, "staging": 1}
        service.delete_alias(session, principal=alice, name="bot", alias="staging")
        with pytest.raises(NotFound):
            service.resolve(session, principal=alice, ref="bot@staging")
        for ref in ("bot:1", "bot@production"):
            with pytest.raises(NotFound):
                service.resolve(session, principal=bob, ref=ref)
        with pytest.raises(Invalid):
            service.resolve(session, principal=alice, ref="../bot")


def test_a_tampered_or_extra_artifact_is_refused(database_url, tenant, tmp_path):
    alice, _ = tenant
    finished_job(database_url, alice, tmp_path=tmp_path)
    with session_scope(database_url) as session:
        _, version = service.resolve(session, principal=alice, ref="tiny-r1-ft:1")
        folder = service.verified_folder(tmp_path, version)
        weights = folder / "adapter_model.safetensors"
        original = weights.read_bytes()
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(IntegrityError, match="adapter_model.safetensors: its sha256 no longer matches"):
            service.verified_folder(tmp_path, version)
        weights.write_bytes(original)
        (folder / "pytorch_model.bin").write_bytes(b"pickle")
        with pytest.raises(IntegrityError, match="pytorch_model.bin: not part of the registered version"):
            service.verified_folder(tmp_path, version)


def test_a_deleted_versions_number_is_never_given_again(database_url, tenant, tmp_path):
    alice, _ = tenant
    refs = [finished_job(database_url, alice, suffix="bot", tmp_path=tmp_path, name=n)[2] for n in ("a", "b")]
    assert refs == ["bot:1", "bot:2"]
    with session_scope(database_url) as session:
        service.delete_version(session, principal=alice, name="bot", version=2, home=tmp_path)
    assert finished_job(database_url, alice, suffix="bot", tmp_path=tmp_path, name="c")[2] == "bot:3"
    with session_scope(database_url) as session:
        for version in (3, 1):
            service.delete_version(session, principal=alice, name="bot", version=version, home=tmp_path)
    assert finished_job(database_url, alice, suffix="bot", tmp_path=tmp_path, name="d")[2] == "bot:4"
    with session_scope(database_url) as session:
        described = service.describe_model(session, service.get_model(session, principal=alice, name="bot"))
        assert [v["version"] for v in described["versions"]] == [4] and described["latest_version"] == 4
