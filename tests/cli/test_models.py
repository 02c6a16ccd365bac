"""`llmft models ...` as an administrator runs it: list, alias with the gate, verify, export, delete."""

import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.auth.keys import create_key
from llmft.cli import main
from llmft.db.session import create_schema, session_scope
from llmft.db.tables import Dataset, Job
from llmft.registry.service import register_version
from llmft.train.summary import DataSummary, RunSummary


@pytest.fixture
def registry(tmp_path, tiny_model_dir, monkeypatch):
    """A tenant `acme` whose registry holds tiny-r1-ft:1, a real LoRA adapter on tiny-r1."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny-r1").symlink_to(tiny_model_dir)
    monkeypatch.setenv("LLMFT_HOME", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'llmft.db'}"
    create_schema(url)
    torch.manual_seed(0)
    adapted = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                             LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    adapted.save_pretrained(tmp_path / "final")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "final")
    with session_scope(url) as session:
        _, key = create_key(session, tenant="acme", role="admin")
        dataset = Dataset(tenant_id=key.tenant_id, filename="d.jsonl", stored_name="x.jsonl", bytes=1,
                          sha256="0" * 64, examples=1, report={})
        session.add(dataset)
        session.flush()
        job = Job(tenant_id=key.tenant_id, status="succeeded", base_model="tiny-r1", dataset_id=dataset.id,
                  method="lora", hyperparameters={}, seed=1, metadata_={}, config={"data": {"think_mode": "mask"}})
        session.add(job)
        session.flush()
        register_version(session, job=job, final_dir=tmp_path / "final", home=tmp_path,
                         summary=RunSummary(
                             status="succeeded", steps=4, epochs=1.0, first_train_loss=3.5, final_train_loss=3.2,
                             final_eval_loss=3.0, best_eval_loss=3.0, best_checkpoint=None, stopped_by=None,
                             tokens_seen=400, train_runtime_s=2.0, tokens_per_second=200.0, processes=1,
                             wall_time_s=3.0, peak_rss_gb=1.0, final_dir=str(tmp_path / "final"),
                             tokenizer_sha256="ab" * 32, renderer_version="2", config={}, llmft_version="0.1.0",
                             torch_version="2.13.0",
                             data=DataSummary(sha256="cd" * 32, sources=[{"name": "d.jsonl", "sha256": "0" * 64}],
                                              folder=str(tmp_path / "prepared"), train_examples=3,
                                              validation_examples=1)))
    return tmp_path


@pytest.mark.slow
def test_models_commands_from_the_shell(registry, capsys):
    assert main(["models", "export", "tiny-r1-ft:1", "--tenant", "acme"]) == 0
    assert "tiny-r1-ft:2" in capsys.readouterr().out
    assert main(["models", "show", "tiny-r1-ft:2", "--tenant", "acme"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kind"] == "full" and shown["lineage"]["exported_from"] == "tiny-r1-ft:1"
    assert main(["models", "alias", "tiny-r1-ft", "production", "2", "--tenant", "acme"]) == 0
    assert main(["models", "list", "--tenant", "acme"]) == 0
    assert "@production=2" in capsys.readouterr().out
    assert main(["models", "verify", "tiny-r1-ft@production", "--tenant", "acme"]) == 0
    assert "match their sha256" in capsys.readouterr().out
    assert main(["models", "delete", "tiny-r1-ft:2", "--tenant", "acme"]) == 1
    assert "aliased as production" in capsys.readouterr().err
    assert main(["models", "export", "tiny-r1-ft:2", "--tenant", "acme"]) == 1
    assert "already holds full weights" in capsys.readouterr().err
    weights = next(registry.glob(f"artifacts/*/{shown['id']}/model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"x")
    assert main(["models", "verify", "tiny-r1-ft:2", "--tenant", "acme"]) == 1
    assert "model.safetensors: its sha256 no longer matches" in capsys.readouterr().err


def test_registry_commands_need_a_known_tenant(capsys):
    assert main(["models", "list", "--tenant", "nobody"]) == 1
    assert "no tenant 'nobody'" in capsys.readouterr().err
