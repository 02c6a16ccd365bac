"""The served prompt is the training render's prompt (issue 15 item 2): for the same conversation, the token ids
serving builds for a registered version (its reasoning contract, read by target_for) equal the training render's
ids up to the first trained token of the turn asked for, on R1 (tiny-r1), ChatML (smollm2-135m, reasoning inline
as think tags) and a Qwen3-style template (its own reasoning_content field), with reasoning in an earlier
assistant turn. R1 and think_tags prompts also open the think block, as the trained turn begins; those tokens
are the training render's next ones."""

import hashlib
import json

import pytest
import torch
from safetensors.torch import save_file

from llmft.auth.keys import authenticate, create_key
from llmft.bases.resolve import load_tokenizer, resolve_model
from llmft.data.config import DataConfig
from llmft.data.tokenize import IGNORE
from llmft.data.validate import check_file
from llmft.db.session import session_scope
from llmft.db.tables import Dataset, Job
from llmft.registry import contract
from llmft.registry import service as registry
from llmft.registry.contract import PROBE, R1_SAMPLING
from llmft.serve import text
from llmft.serve.engine import Engine
from llmft.serve.service import chat_messages, chat_prompt, generate, target_for
from llmft.serve.text import tokenizer_for
from llmft.settings import Settings
from llmft.train.summary import DataSummary, RunSummary
from tests.data.conftest import make_qwen3_style

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CONVERSATION = [
    {"role": "system", "content": "You answer questions about brokerage accounts."},
    {"role": "user", "content": "Can I sell on Saturday?"},
    {"role": "assistant", "content": "No, markets are closed on weekends.",
     "reasoning_content": "Exchanges trade Monday to Friday. Saturday is a weekend day."},
    {"role": "user", "content": "When does the money arrive if I sell on Friday?"},
    {"role": "assistant", "content": "On Monday, the next trading day.",
     "reasoning_content": "Settlement is T+1 on trading days: Friday + 1 trading day is Monday."},
]
ASSISTANT_TURNS = (2, 4)
SUMMARY = RunSummary(
    status="succeeded", steps=1, epochs=1.0, first_train_loss=2.0, final_train_loss=1.0, final_eval_loss=1.0,
    best_eval_loss=1.0, best_checkpoint=None, stopped_by=None, tokens_seen=10, train_runtime_s=1.0,
    tokens_per_second=10.0, processes=1, wall_time_s=1.0, peak_rss_gb=1.0, final_dir="final",
    tokenizer_sha256="ab" * 32, renderer_version="3", config={}, llmft_version="0.1.0", torch_version="2.13.0",
    data=DataSummary(sha256="cd" * 32, sources=[], folder="prepared", train_examples=1, validation_examples=0))


@pytest.fixture(scope="module", autouse=True)
def forget_loaded_bases():
    """The process-wide tokenizer and contract caches are left as found: a later test's fresh $LLMFT_HOME without
    smollm2-135m must see it missing (tests/serve/test_generate.py's offline 503)."""
    tokenizers, contracts = dict(text._tokenizers), dict(contract._bases)
    yield
    text._tokenizers.clear()
    text._tokenizers.update(tokenizers)
    contract._bases.clear()
    contract._bases.update(contracts)


@pytest.fixture(scope="module")
def bases(tiny_model_dir, smollm2_dir, tmp_path_factory) -> dict:
    return {"r1": "tiny-r1", "chatml": "smollm2-135m",
            "qwen3": str(make_qwen3_style(smollm2_dir, tmp_path_factory.mktemp("qwen3-style")))}


@pytest.fixture
def alice(database_url):
    with session_scope(database_url) as session:
        key, _ = create_key(session, tenant="acme", role="admin")
        return authenticate(session, key)


def trained(tmp_path, base: str, think_mode: str):
    """The training render of CONVERSATION (validate's, what prepare stores) and the format it resolved."""
    path = tmp_path / f"{think_mode}.jsonl"
    path.write_text(json.dumps({"messages": CONVERSATION}) + "\n")
    checked = check_file(path, tokenizer=load_tokenizer(str(resolve_model(base))),
                         config=DataConfig(think_mode=think_mode, validation_ratio=0.0))
    [tokens] = checked.tokenized
    return tokens, checked.reasoning_format


def register(database_url, principal, settings, *, base: str, reasoning_format: str, think_mode: str,
             evaluation: dict | None = None) -> str:
    """A fine-tune of `base` registered as the job child does (its lineage written by registry._lineage)."""
    folder = settings.llmft_home / f"final-{reasoning_format}-{think_mode}"
    folder.mkdir()
    save_file({"lora_A": torch.zeros(2, 2)}, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({"r": 2, "peft_type": "LORA"}))
    with session_scope(database_url) as session:
        dataset = Dataset(tenant_id=principal.tenant_id, filename="d.jsonl", stored_name="d.jsonl", bytes=1,
                          sha256="ef" * 32, examples=1, report={})
        session.add(dataset)
        session.flush()
        job = Job(tenant_id=principal.tenant_id, status="running", base_model=base, dataset_id=dataset.id,
                  method="lora", hyperparameters={}, seed=1, metadata_={}, suffix=f"parity-{reasoning_format}",
                  config={"data": {"think_mode": think_mode, "reasoning_format": "auto"}})
        session.add(job)
        session.flush()
        summary = SUMMARY.model_copy(update={"reasoning_format": reasoning_format})
        version = registry.register_version(session, job=job, final_dir=folder, summary=summary,
                                            home=settings.llmft_home, evaluation=evaluation)
        return f"parity-{reasoning_format}:{version.version}"


def turn_starts(labels: list[int]) -> list[int]:
    """Where each trained run (an assistant turn) begins."""
    return [i for i, label in enumerate(labels) if label != IGNORE and (i == 0 or labels[i - 1] == IGNORE)]


@pytest.mark.parametrize("kind, think_mode, expected_format, opener", [
    ("r1", "mask", "r1", "<think>\n"),
    ("chatml", "mask", "think_tags", "<think>\n"),
    ("chatml", "omit", "think_tags", ""),
    ("qwen3", "mask", "template", ""),
])
def test_the_served_prompt_is_the_training_render_up_to_the_answer(database_url, alice, bases, tmp_path, kind,
                                                                    think_mode, expected_format, opener):
    base = bases[kind]
    settings = Settings(llmft_home=tmp_path, database_url=database_url)
    tokens, reasoning_format = trained(tmp_path, base, think_mode)
    assert reasoning_format == expected_format
    model = register(database_url, alice, settings, base=base, reasoning_format=reasoning_format, think_mode=think_mode)
    with session_scope(database_url) as session:
        target = target_for(session, principal=alice, model=model, settings=settings)
    assert (target.contract["reasoning_format"], target.contract["think_mode"]) == (reasoning_format, think_mode)
    tokenizer = tokenizer_for(base)
    starts = turn_starts(tokens.labels)
    assert len(starts) == len(ASSISTANT_TURNS)
    for turn, start in zip(ASSISTANT_TURNS, starts):
        ids, reasoning_open = chat_prompt(tokenizer, chat_messages(CONVERSATION[:turn]), target.contract)
        assert ids == tokens.input_ids[:len(ids)]  # the served prompt is the training text's beginning
        assert len(ids) >= start and all(label == IGNORE for label in tokens.labels[:start][-1:])
        assert tokenizer.decode(tokens.input_ids[start:len(ids)]) == opener  # the think block opened, as trained
        assert reasoning_open == bool(opener)
    # the contract's hash is the hash of what serving builds for the probe conversation
    probe, _ = chat_prompt(tokenizer, list(PROBE), target.contract)
    assert target.contract["generation_prompt_sha256"] == hashlib.sha256(json.dumps(probe).encode()).hexdigest()


def test_the_contract_records_sampling_budget_and_measured_rates(database_url, alice, bases, tmp_path):
    settings = Settings(llmft_home=tmp_path, database_url=database_url)
    evaluation = {"candidate": {"eos_rate": 0.97, "closed_think_rate": 0.99, "rouge_l": 0.3}}
    model = register(database_url, alice, settings, base="tiny-r1", reasoning_format="r1", think_mode="mask",
                     evaluation=evaluation)
    with session_scope(database_url) as session:
        _, version = registry.resolve(session, principal=alice, ref=model)
        recorded = version.lineage["reasoning"]
        target = target_for(session, principal=alice, model=model, settings=settings)
    assert {key: recorded[key] for key in ("renderer_version", "reasoning_format", "think_mode", "eos_rate",
                                           "closed_think_rate")} == {"renderer_version": "3", "reasoning_format": "r1",
                                                                     "think_mode": "mask", "eos_rate": 0.97,
                                                                     "closed_think_rate": 0.99}
    assert {key: recorded[key] for key in R1_SAMPLING} == R1_SAMPLING and recorded["thinking_budget"] > 0
    assert target.contract == recorded


def test_a_request_on_tiny_r1_reports_the_training_prompt_length(database_url, alice, bases, tmp_path):
    """Through generate (the path of every request): the prompt it queued has the training render's length up to
    the last turn's answer, its think block opened."""
    settings = Settings(llmft_home=tmp_path, database_url=database_url)
    tokens, _ = trained(tmp_path, "tiny-r1", "mask")
    start = turn_starts(tokens.labels)[-1]
    with session_scope(database_url) as session:
        [reply] = generate(session, principal=alice, settings=settings, engine=Engine(max_batch=1), model="tiny-r1",
                           chats=[CONVERSATION[:4]], max_tokens=1, temperature=0)
    reply.generation.results()
    opener = len(load_tokenizer(str(resolve_model("tiny-r1")))("<think>\n", add_special_tokens=False)["input_ids"])
    assert reply.prompt_tokens == start + opener and reply.reasoning_open


@pytest.mark.parametrize("with_reasoning, expected_format", [(0.4, "think_tags"), (0.0, "template")])
def test_a_checkpoint_served_by_name_is_prompted_as_its_run_renders(database_url, alice, bases, tmp_path,
                                                                     with_reasoning, expected_format):
    """Before it registers, a run's checkpoint (JOB_ID:checkpoint-N) gets the format its data options resolve to
    on its dataset (with reasoning or not, as the upload's report says)."""
    settings = Settings(llmft_home=tmp_path, database_url=database_url)
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-1"
    checkpoint.mkdir(parents=True)
    save_file({"lora_A": torch.zeros(2, 2)}, checkpoint / "adapter_model.safetensors")
    (checkpoint / "adapter_config.json").write_text(json.dumps({"r": 2, "peft_type": "LORA"}))
    (checkpoint / "COMMITTED").write_text("{}\n")
    with session_scope(database_url) as session:
        dataset = Dataset(tenant_id=alice.tenant_id, filename="d.jsonl", stored_name="d.jsonl", bytes=1,
                          sha256="ef" * 32, examples=1, report={"with_reasoning": with_reasoning})
        session.add(dataset)
        session.flush()
        job = Job(tenant_id=alice.tenant_id, status="running", base_model=bases["chatml"], dataset_id=dataset.id,
                  method="lora", hyperparameters={}, seed=1, metadata_={},
                  config={"data": {"think_mode": "mask", "reasoning_format": "auto"},
                          "output": {"output_dir": str(tmp_path / "run")}})
        session.add(job)
        session.flush()
        target = target_for(session, principal=alice, model=f"{job.id}:checkpoint-1", settings=settings)
    assert (target.contract["reasoning_format"], target.contract["think_mode"]) == (expected_format, "mask")
    if expected_format == "think_tags":
        tokens, _ = trained(tmp_path, bases["chatml"], "mask")
        ids, reasoning_open = chat_prompt(tokenizer_for(bases["chatml"]), chat_messages(CONVERSATION[:4]),
                                          target.contract)
        assert ids == tokens.input_ids[:len(ids)] and reasoning_open
