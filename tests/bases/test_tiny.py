import hashlib
import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.bases.r1_tokenizer import R1_ADDED_TOKENS
from llmft.bases.resolve import ModelNotFoundError, resolve_model, tokenizer_fingerprint
from llmft.bases.tiny import build_tiny_model


def test_tokenizer_encodes_like_deepseek_r1(tokenizer):
    assert tokenizer("Hello world!", add_special_tokens=False).input_ids == [9707, 1879, 0]
    # As upstream (LlamaTokenizerFast, add_bos_token=true): BOS is prepended, EOS is not.
    assert tokenizer("Hello world!").input_ids == [151646, 9707, 1879, 0]
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (151646, 151643, 151643)


def test_special_tokens_sit_at_their_real_ids(tokenizer, shared_fixtures):
    facts = json.loads((shared_fixtures / "deepseek-r1-distill-qwen-1.5b" / "tokenizer_facts.json").read_text())
    for token_id, text in facts["added_tokens"].items():
        assert tokenizer.convert_tokens_to_ids(text) == int(token_id)
    assert {str(i): t for i, t, _ in R1_ADDED_TOKENS} == facts["added_tokens"]


def test_think_tags_survive_skip_special_tokens(tokenizer):
    ids = tokenizer("<think>\nhmm\n</think>\n\nok<｜end▁of▁sentence｜>", add_special_tokens=False).input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>\nhmm\n</think>\n\nok"


def test_tiny_model_loads_with_auto_classes(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.config.vocab_size == 151936
    assert (model.config.bos_token_id, model.config.eos_token_id) == (151646, 151643)
    assert sorted(p.name for p in tiny_model_dir.iterdir() if p.suffix in (".bin", ".pt", ".pth")) == []


@pytest.mark.slow
def test_build_is_deterministic(tmp_path, tiny_model_dir):
    again = build_tiny_model(tmp_path / "again", seed=0)
    digest = lambda folder: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}  # noqa: E731
    assert digest(again) == digest(tiny_model_dir)
    assert AutoTokenizer.from_pretrained(again)("你好").input_ids == [151646, 108386]


def test_tiny_r1_name_resolves_to_the_built_model(tiny_model_dir):
    assert resolve_model("tiny-r1") == tiny_model_dir
    assert len(tokenizer_fingerprint(tiny_model_dir)) == 64


def test_local_folder_resolves_and_empty_folder_is_refused(tmp_path, tiny_model_dir):
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))


def test_unreachable_hub_model_says_how_to_fix_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="--local-dir"):
        resolve_model("deepseek-r1-1.5b")
