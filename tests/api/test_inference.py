"""Inference over HTTP with the official `openai` client and the v0 predict endpoints, on
versions the server trained itself: reasoning apart from the answer, usage counts, streaming,
errors as the client's exception types, limits, tenants, and an alias moved under load."""

import json
import threading
import time

import openai
import pytest
import requests
from test_registry import auth, fine_tune

from llmft.data.normalize import Message
from llmft.serve.service import chat_prompt

QUESTION = "What is two plus two?"
REASONING, ANSWER = "Two and two make four.", "The answer is 4."
ROWS = [{"messages": [{"role": "user", "content": QUESTION},
                      {"role": "assistant", "reasoning_content": REASONING, "content": ANSWER}]}] * 12
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def versions(server, keys):
    """qa-bot:1, a full fine-tune that learned one answer with its reasoning; qa-bot:2, a LoRA adapter."""
    data = "".join(json.dumps(row) + "\n" for row in ROWS).encode()
    dataset = requests.post(f"{server}/api/v1/datasets", headers=auth(keys["alice"]),
                            files={"file": ("qa.jsonl", data)}, timeout=120).json()["id"]
    full = fine_tune(server, keys["alice"], dataset, "qa-bot", max_steps=30, learning_rate=1e-2, warmup_steps=0,
                     lr_scheduler="constant", batch_size=4)
    lora = fine_tune(server, keys["alice"], dataset, "qa-bot", method="lora", max_steps=2)
    assert (full["fine_tuned_model"], lora["fine_tuned_model"]) == ("qa-bot:1", "qa-bot:2")
    return full, lora


@pytest.fixture
def client(server, keys):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=keys["alice"], max_retries=0, timeout=120)


def expected_usage(tokenizer):
    prompt, _ = chat_prompt(tokenizer, [Message("user", QUESTION)])
    generated = tokenizer(f"{REASONING}\n</think>\n\n{ANSWER}", add_special_tokens=False)["input_ids"]
    return len(prompt), len(generated) + 1  # the end-of-sequence token counts as generated


def test_a_chat_completion_returns_the_reasoning_apart_and_counts_tokens(client, versions, tokenizer):
    reply = client.chat.completions.create(model="qa-bot:1", messages=[{"role": "user", "content": QUESTION}],
                                           temperature=0, max_tokens=64)
    message = reply.choices[0].message
    assert (message.reasoning_content, message.content) == (REASONING, ANSWER)
    assert reply.choices[0].finish_reason == "stop" and reply.model == "qa-bot:1"
    prompt_tokens, completion_tokens = expected_usage(tokenizer)
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt_tokens, completion_tokens)
    assert reply.usage.total_tokens == prompt_tokens + completion_tokens


def test_a_streamed_chat_completion_sends_reasoning_and_answer_deltas(client, versions, tokenizer):
    stream = client.chat.completions.create(model="qa-bot:1", messages=[{"role": "user", "content": QUESTION}],
                                            temperature=0, max_tokens=64, stream=True,
                                            stream_options={"include_usage": True})
    reasoning, content, finish, usage, roles = [], [], None, None, []
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            delta = choice.delta
            roles += [delta.role] if delta.role else []
            reasoning += [getattr(delta, "reasoning_content", None) or ""]
            content += [delta.content or ""]
            finish = choice.finish_reason or finish
    assert roles == ["assistant"] and finish == "stop"
    assert ("".join(reasoning), "".join(content)) == (REASONING, ANSWER)
    assert len([part for part in reasoning if part]) > 1  # token by token, not one block
    assert (usage.prompt_tokens, usage.completion_tokens) == expected_usage(tokenizer)


def test_models_completions_and_sampling_options(client, versions):
    ids = [model.id for model in client.models.list()]
    assert {"tiny-r1", "qa-bot:1", "qa-bot:2"} <= set(ids)
    newest = client.chat.completions.create(model="qa-bot", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert newest.model == "qa-bot:2"  # a bare name is its newest version (here the LoRA adapter)
    text = client.completions.create(model="qa-bot:1", prompt="Two and", max_tokens=5, temperature=0)
    assert text.choices[0].text and text.usage.completion_tokens == 5 and text.choices[0].finish_reason == "length"
    messages = [{"role": "user", "content": QUESTION}]
    stopped = client.chat.completions.create(model="qa-bot:1", messages=messages, temperature=0, stop=["is"],
                                             max_tokens=64)
    assert stopped.choices[0].message.content == "The answer " and stopped.choices[0].finish_reason == "stop"
    sampled = [client.chat.completions.create(model="tiny-r1", messages=messages, temperature=1.0, top_p=0.9,
                                              seed=11, max_tokens=8, n=2) for _ in range(2)]
    first, again = ([c.message.reasoning_content for c in reply.choices] for reply in sampled)
    assert first == again and first[0] != first[1] and sampled[0].usage.completion_tokens == 16


def test_errors_are_the_clients_exception_types(client, server, keys, versions):
    messages = [{"role": "user", "content": QUESTION}]
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=messages)
    assert missing.value.body["code"] == "model_not_found" and missing.value.body["param"] == "model"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="qa-bot:1", messages=[{"role": "user", "content": "word " * 2000}])
    assert too_long.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model="qa-bot:1", messages=messages, max_tokens=100_000)
    assert too_many.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as unsupported:
        client.chat.completions.create(model="qa-bot:1", messages=messages, tools=[{"type": "function", "function": {"name": "f"}}])
    assert unsupported.value.body["param"] == "tools" and "not supported" in unsupported.value.body["message"]
    with pytest.raises(openai.BadRequestError) as bad_role:
        client.chat.completions.create(model="qa-bot:1", messages=[{"role": "robot", "content": "x"}])
    assert bad_role.value.body["param"] == "messages[0].role"
    for bad in ({"messages": [{"role": "user", "content": "a\ud800b"}]}, {"messages": messages, "stop": ["\udfff"]}):
        # JSON can carry a lone surrogate (escaped); the openai client cannot even send one
        response = requests.post(f"{server}/v1/chat/completions", headers={**auth(keys["alice"]),
                                 "Content-Type": "application/json"}, data=json.dumps({"model": "qa-bot:1", **bad}))
        assert response.status_code == 400 and "not valid Unicode" in response.json()["error"]["message"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server}/v1", api_key="llmft_wrong", max_retries=0).models.list()
    other = openai.OpenAI(base_url=f"{server}/v1", api_key=keys["bob"], max_retries=0)
    with pytest.raises(openai.NotFoundError):  # another tenant's version does not exist for bob
        other.chat.completions.create(model="qa-bot:1", messages=messages)
    assert "qa-bot:1" not in [model.id for model in other.models.list()]


def test_the_original_predict_and_generate_endpoints(server, keys, versions):
    headers = auth(keys["alice_viewer"])  # inference changes nothing: a viewer key may call it
    answer = requests.post(f"{server}/api/v1/predict", headers=headers, timeout=120, json={
        "text": QUESTION, "max_length": 64, "temperature": 0, "model": "qa-bot:1"}).json()
    assert (answer["answer"], answer["reasoning"], answer["finish_reason"]) == (ANSWER, REASONING, "stop")
    assert answer["text"] == ANSWER and answer["usage"]["completion_tokens"] > 0 and answer["model"] == "qa-bot:1"
    one = requests.post(f"{server}/api/v1/generate", headers=headers, timeout=120, json={
        "prompt": QUESTION, "max_new_tokens": 64, "temperature": 0, "model": "qa-bot:1"}).json()
    assert one["answer"] == ANSWER
    batch = requests.post(f"{server}/api/v1/generate/batch", headers=headers, timeout=120, json={
        "prompts": [QUESTION, QUESTION, "hello"], "max_new_tokens": 64, "temperature": 0, "model": "qa-bot:1"}).json()
    assert [r["answer"] for r in batch["results"][:2]] == [ANSWER, ANSWER] and len(batch["results"]) == 3
    base = requests.post(f"{server}/api/v1/predict", headers=headers, timeout=120, json={"text": "hi", "max_length": 3})
    assert base.status_code == 200 and base.json()["model"] == "tiny-r1"  # default: the first served base
    limits = [({"text": "word " * 2000}, "context_length_exceeded"), ({"text": "hi", "max_length": 10_000}, "invalid_value"),
              ({"text": "hi", "temperature": 5}, "invalid"), ({"text": "hi", "surprise": 1}, "invalid")]
    for body, code in limits:
        response = requests.post(f"{server}/api/v1/predict", headers=headers, json=body, timeout=30)
        assert response.status_code in (400, 422) and response.json()["error"]["code"] == code, (body, response.text)


def test_moving_an_alias_under_load_fails_no_request(server, keys, client, versions):
    move = lambda version: requests.put(f"{server}/api/v1/models/qa-bot/aliases/live", headers=auth(keys["alice"]),
                                        json={"version": version}, timeout=30).raise_for_status()
    move(1)
    served, failures, stop = [], [], threading.Event()

    def call():
        while not stop.is_set():
            try:
                reply = client.chat.completions.create(model="qa-bot@live", max_tokens=6, temperature=0,
                                                       messages=[{"role": "user", "content": QUESTION}])
                served.append(reply.model)
            except Exception as error:  # any failure at all is what this test looks for
                failures.append(repr(error))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for version in (2, 1, 2):
        time.sleep(2)
        move(version)
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == [] and {"qa-bot:1", "qa-bot:2"} <= set(served) and served[-1] == "qa-bot:2"


def close_block(tokenizer) -> int:
    return len(tokenizer("\n</think>\n\n", add_special_tokens=False)["input_ids"])


def test_a_thinking_budget_closes_the_think_block_and_usage_counts_its_tokens(client, server, keys, tokenizer):
    # tiny-r1's random weights, sampled, never close a think block by themselves: the budget does
    ask = {"model": "tiny-r1", "messages": [{"role": "user", "content": QUESTION}], "temperature": 1.0, "seed": 4,
           "max_tokens": 24}
    reply = client.chat.completions.create(**ask, extra_body={"thinking_token_budget": 6})
    message = reply.choices[0].message
    assert message.reasoning_content and message.content  # the answer follows the close
    assert reply.usage.completion_tokens_details.reasoning_tokens == 6 + close_block(tokenizer)
    assert reply.usage.completion_tokens == 24

    stream = client.chat.completions.create(**ask, extra_body={"thinking_token_budget": 6}, stream=True,
                                            stream_options={"include_usage": True})
    reasoning, content, usage = [], [], None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            reasoning.append(getattr(choice.delta, "reasoning_content", None) or "")
            content.append(choice.delta.content or "")
    assert ("".join(reasoning), "".join(content)) == (message.reasoning_content, message.content)  # the same seed
    assert usage.completion_tokens_details.reasoning_tokens == 6 + close_block(tokenizer)

    low = client.chat.completions.create(**{**ask, "max_tokens": 20}, reasoning_effort="low")
    assert low.usage.completion_tokens_details.reasoning_tokens == 10 + close_block(tokenizer)  # half of max_tokens

    text = client.completions.create(model="tiny-r1", prompt="<｜User｜>hi<｜Assistant｜><think>\n", max_tokens=16,
                                     temperature=1.0, seed=2, extra_body={"thinking_token_budget": 4})
    assert "</think>" in text.choices[0].text
    assert text.usage.completion_tokens_details.reasoning_tokens == 4 + close_block(tokenizer)

    answer = requests.post(f"{server}/api/v1/predict", headers=auth(keys["alice_viewer"]), timeout=120, json={
        "text": QUESTION, "max_length": 20, "temperature": 1, "seed": 1, "thinking_token_budget": 5}).json()
    assert answer["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5 + close_block(tokenizer)
    assert answer["reasoning"] and answer["answer"]


def test_a_wrong_thinking_budget_is_a_400_naming_it(client, server, keys):
    messages = [{"role": "user", "content": QUESTION}]
    for ask, param in [({"reasoning_effort": "extreme"}, "reasoning_effort"),
                       ({"extra_body": {"thinking_token_budget": -1}}, "thinking_token_budget"),
                       ({"extra_body": {"thinking_token_budget": 10_000}}, "thinking_token_budget"),
                       ({"extra_body": {"thinking_token_budget": "lots"}}, "thinking_token_budget"),
                       ({"reasoning_effort": "low", "extra_body": {"thinking_token_budget": 4}}, "thinking_token_budget")]:
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model="tiny-r1", messages=messages, max_tokens=2, **ask)
        assert refused.value.body["param"] == param and param in refused.value.body["message"], refused.value.body
    response = requests.post(f"{server}/api/v1/predict", headers=auth(keys["alice_viewer"]), timeout=30,
                             json={"text": "hi", "reasoning_effort": "max"})
    assert response.status_code == 422 and "reasoning_effort" in response.text
