"""A fine-tune's committed checkpoint served by name (`JOB_ID:checkpoint-N`): the folders the trainer writes (LoRA
and full weights, with the optimizer and trainer state beside them) load through the engine's model cache under
keys of their own and generate what the checkpoint's weights generate; only the job's tenant reaches them, and a
checkpoint save_total_limit dropped, or a name that is not one, is model_not_found."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from llmft.auth.keys import authenticate, create_key
from llmft.data.normalize import Message
from llmft.db.session import session_scope
from llmft.db.tables import Job
from llmft.errors import NotFound
from llmft.serve.engine import Engine
from llmft.serve.sampling import Sampling
from llmft.serve.service import chat_prompt, describe_model, served_models, target_for
from llmft.settings import Settings
from llmft.train.config import load_config
from llmft.train.run import train

pytestmark = [pytest.mark.parametrize("database_url", ["sqlite"], indirect=True), pytest.mark.slow]  # two short runs
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "brokerage_support.jsonl"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    """A LoRA and a full-weight run of 3 steps, a checkpoint at each, 2 kept: checkpoint-2 and checkpoint-3."""
    data = tmp_path_factory.mktemp("data") / "small.jsonl"
    data.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:20]), encoding="utf-8")
    out = {}
    for method in ("lora", "full"):
        output = tmp_path_factory.mktemp(method) / "run"
        result = train(load_config(None, [f"data.train_file={data}", "data.max_length=512", "training.batch_size=1",
                                          "training.max_steps=3", "training.save_steps=1", "training.save_total_limit=2",
                                          "training.learning_rate=0.01", f"method.type={method}",
                                          f"output.output_dir={output}"]), progress=False)
        assert result.status == "succeeded"
        out[method] = output
    return out


@pytest.fixture
def jobs(database_url, runs) -> dict:
    """Tenant acme owns a job row for each run; globex is another tenant."""
    with session_scope(database_url) as session:
        alice = authenticate(session, create_key(session, tenant="acme", role="admin")[0])
        bob = authenticate(session, create_key(session, tenant="globex", role="admin")[0])
        ids = {}
        for method, output in runs.items():
            job = Job(tenant_id=alice.tenant_id, status="succeeded", base_model="tiny-r1", method=method,
                      hyperparameters={}, seed=0, metadata_={}, config={"output": {"output_dir": str(output)}})
            session.add(job)
            session.flush()
            ids[method] = job.id
    return {"alice": alice, "bob": bob, **ids}


def reference(model, prompt: list[int], new_tokens: int) -> list[int]:
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, do_sample=False)
    return out[0, len(prompt):].tolist()


def test_a_checkpoint_by_name_generates_what_its_weights_generate(database_url, jobs, runs, tiny_model_dir,
                                                                    tokenizer, tmp_path):
    from peft import PeftModel

    settings = Settings(llmft_home=tmp_path, database_url=database_url)
    prompt = chat_prompt(tokenizer, [Message("user", "How do I reset my trading password?")])[0]
    engine = Engine(max_batch=4)
    targets = {}
    with session_scope(database_url) as session:
        for method in ("lora", "full"):
            for step in (2, 3):
                name = f"{jobs[method]}:checkpoint-{step}"
                targets[name] = target_for(session, principal=jobs["alice"], model=name, settings=settings)
    assert {t.kind for t in targets.values()} == {"adapter", "full"}
    assert all(t.key.startswith("checkpoint:") and t.label == name for name, t in targets.items())
    generations = {name: engine.submit(t, prompt, Sampling(max_new_tokens=8, temperature=0), reasoning_open=True)
                   for name, t in targets.items()}  # the four share the engine (two adapters on one base)
    # every result before any reference model loads: from_pretrained in two threads at once is not safe
    results = {name: generation.results()[0].token_ids for name, generation in generations.items()}
    for name, target in targets.items():
        fresh = AutoModelForCausalLM.from_pretrained(target.folder if target.kind == "full" else tiny_model_dir,
                                                     dtype=torch.float32)
        weights = PeftModel.from_pretrained(fresh, str(target.folder)) if target.kind == "adapter" else fresh
        assert results[name] == reference(weights.eval(), prompt, 8), name
    assert {e["key"] for e in engine.loaded()} == {"base:tiny-r1", *(t.key for t in targets.values())}


def test_checkpoints_are_listed_retrieved_and_only_by_their_tenant(database_url, jobs, tmp_path):
    settings = Settings(llmft_home=tmp_path, database_url=database_url)
    with session_scope(database_url) as session:
        listed = [m["id"] for m in served_models(session, principal=jobs["alice"], settings=settings)]
        named = [name for name in listed if ":checkpoint-" in name]
        assert sorted(named) == sorted(f"{jobs[m]}:checkpoint-{s}" for m in ("lora", "full") for s in (2, 3))
        assert all(named.index(f"{jobs[m]}:checkpoint-3") < named.index(f"{jobs[m]}:checkpoint-2")
                   for m in ("lora", "full"))  # newest first
        one = describe_model(session, principal=jobs["alice"], settings=settings, model=f"{jobs['lora']}:checkpoint-3")
        assert one["fine_tuning_job_id"] == jobs["lora"] and one["step"] == 3 and one["owned_by"] == "acme"
        assert not [m for m in served_models(session, principal=jobs["bob"], settings=settings)
                    if ":checkpoint-" in m["id"]]
        unknown = f"job-{'0' * 16}:checkpoint-3"
        for principal, name in [(jobs["bob"], f"{jobs['lora']}:checkpoint-3"),  # another tenant's
                                (jobs["alice"], unknown),
                                (jobs["alice"], f"{jobs['lora']}:checkpoint-1"),  # dropped by save_total_limit
                                (jobs["alice"], f"{jobs['lora']}:checkpoint-3/../../final"),
                                (jobs["alice"], f"{jobs['lora']}:final"),
                                (jobs["alice"], f"{jobs['lora'].upper()}:checkpoint-3")]:
            with pytest.raises(NotFound) as refused:
                target_for(session, principal=principal, model=name, settings=settings)
            assert refused.value.code == "model_not_found", name
            with pytest.raises(NotFound):
                describe_model(session, principal=principal, settings=settings, model=name)
        with pytest.raises(NotFound) as other:
            target_for(session, principal=jobs["bob"], model=f"{jobs['lora']}:checkpoint-3", settings=settings)
        with pytest.raises(NotFound) as nobody:
            target_for(session, principal=jobs["bob"], model=unknown, settings=settings)
        assert other.value.message.replace(f"{jobs['lora']}:checkpoint-3", "X") == nobody.value.message.replace(unknown, "X")
