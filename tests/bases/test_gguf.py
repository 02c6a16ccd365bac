import json

import gguf
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmft.bases.gguf import MANIFEST, import_gguf, verify_manifest
from llmft.config import ConfigError

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.slow
def test_smollm2_is_a_plain_folder_whose_manifest_verifies(smollm2_dir):
    names = {path.name for path in smollm2_dir.iterdir()}
    assert names == {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json", "chat_template.jinja", MANIFEST}
    assert verify_manifest(smollm2_dir) == []
    manifest = json.loads((smollm2_dir / MANIFEST).read_text())
    assert manifest["source"]["file"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and len(manifest["source"]["sha256"]) == 64
    config = json.loads((smollm2_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["architectures"], config["num_hidden_layers"], config["hidden_size"]) == (["LlamaForCausalLM"], 30, 576)
    assert (config["vocab_size"], config["tie_word_embeddings"], config["dtype"]) == (49152, True, "float32")
    generation = json.loads((smollm2_dir / "generation_config.json").read_text())
    assert (generation["eos_token_id"], generation["pad_token_id"], config["pad_token_id"]) == (2, 2, 2)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert (tokenizer.eos_token, tokenizer.eos_token_id, tokenizer.pad_token_id) == ("<|im_end|>", 2, 2)
    assert tokenizer.model_max_length == 8192


@pytest.mark.slow
def test_smollm2_answers_with_its_chat_template_and_stops_at_im_end(smollm2_dir):
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, use_safetensors=True)
    prompt = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert tokenizer.decode(prompt["input_ids"][0]).endswith("<|im_start|>assistant\n")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=24, do_sample=False)[0, prompt["input_ids"].shape[1]:]
    assert "Paris" in tokenizer.decode(out) and out[-1].item() == tokenizer.eos_token_id
    assert tokenizer.decode(out[:-1]).count("<|im_end|>") == 0


def _nothing_written(out):
    return not out.exists() and [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []


def test_a_file_that_is_not_gguf_is_refused_and_nothing_is_written(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"<html>not found</html>")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        import_gguf(path, tmp_path / "out")
    assert _nothing_written(tmp_path / "out")
    with pytest.raises(ConfigError, match="no such GGUF file"):
        import_gguf(tmp_path / "absent.gguf", tmp_path / "out")


@pytest.mark.slow
def test_a_truncated_gguf_is_refused_and_nothing_is_written(tmp_path, smollm2_gguf):
    path = tmp_path / "cut.gguf"
    with open(smollm2_gguf, "rb") as source:
        path.write_bytes(source.read(smollm2_gguf.stat().st_size // 2))
    with pytest.raises(ConfigError, match="cut.gguf: transformers cannot read this GGUF"):
        import_gguf(path, tmp_path / "out")
    assert _nothing_written(tmp_path / "out")


def _write_gguf(path, architecture):
    writer = gguf.GGUFWriter(path, architecture)
    writer.add_block_count(1)
    writer.add_context_length(16)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_gguf_that_is_not_a_causal_lm_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="architecture 't5' is not a causal language model"):
        import_gguf(_write_gguf(tmp_path / "t5.gguf", "t5"), tmp_path / "out")
    with pytest.raises(ConfigError, match="cannot read this GGUF .*architecture bert is not supported"):
        import_gguf(_write_gguf(tmp_path / "bert.gguf", "bert"), tmp_path / "out")
    assert _nothing_written(tmp_path / "out")


def test_an_out_folder_holding_files_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists"):
        import_gguf(_write_gguf(tmp_path / "t5.gguf", "t5"), tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
