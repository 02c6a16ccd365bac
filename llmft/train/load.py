"""Load the base model for a training method: LoRA (default), full fine-tuning, or QLoRA.

    model = load_model(config)                          # supervised: PEFT-wrapped for lora/qlora
    base, peft = load_base(config), lora_config(config)  # TRL's trainers wrap the base themselves

`config.method.tuning` says which weights train, for supervised and preference/RL methods alike.
"""

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM

from llmft.bases.resolve import ModelNotFoundError, weights_source
from llmft.config import ConfigError
from llmft.train.config import TrainConfig


def training_precision(config: TrainConfig) -> str:
    """fp32, bf16 or fp16: what `precision: auto` means on this hardware."""
    wanted = config.training.precision
    cuda = torch.cuda.is_available()
    if wanted == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if wanted == "fp16" and not cuda:
        raise ConfigError("training.precision fp16 needs a CUDA GPU; use bf16 or fp32 on CPU")
    return wanted


def check_method(config: TrainConfig) -> None:
    """Refuse what this machine cannot run before anything loads."""
    if config.method.tuning == "qlora" and not torch.cuda.is_available():
        raise ConfigError("qlora needs a CUDA GPU (bitsandbytes 4-bit); "
                          "on this machine use lora (same adapter, full-precision base)")
    targets = config.method.lora.target_modules
    if isinstance(targets, list) and "lm_head" in targets:
        raise ConfigError("method.lora.target_modules: lm_head cannot be adapted; "
                          "train full weights to train the output layer")


def load_model(config: TrainConfig):
    """The model ready to train: PEFT-wrapped for lora/qlora, plain for full."""
    model = load_base(config)
    peft = lora_config(config)
    return model if peft is None else get_peft_model(model, peft)


def lora_config(config: TrainConfig) -> LoraConfig | None:
    """The adapter a lora or qlora run trains; None for full fine-tuning."""
    if config.method.tuning == "full":
        return None
    lora = config.method.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
                      bias="none", task_type="CAUSAL_LM")


def load_base(config: TrainConfig):
    """The base model's weights, in the dtype the method trains them in (4-bit and prepared for qlora)."""
    check_method(config)
    precision = training_precision(config)
    dtype = _weights_dtype(config, precision)
    kwargs = dict(dtype=dtype, attn_implementation=config.model.attn_implementation,
                  trust_remote_code=config.model.trust_remote_code, revision=config.model.revision)
    if config.method.tuning == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    source = weights_source(config.model.base_model)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True, **kwargs)
    except OSError as error:
        raise ModelNotFoundError(
            f"cannot load weights of {config.model.base_model!r} from {source} ({error}). Download the model where "
            f"the hub is reachable (`hf download {source} --local-dir DIR`) and set model.base_model to DIR."
        ) from None
    if config.method.tuning == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.training.gradient_checkpointing)
    return model


def _weights_dtype(config: TrainConfig, precision: str) -> torch.dtype:
    if config.model.dtype != "auto":
        return getattr(torch, config.model.dtype)
    if config.method.tuning == "full" or precision == "fp32":
        return torch.float32  # full fine-tuning keeps fp32 master weights; autocast does the rest
    return torch.bfloat16 if precision == "bf16" else torch.float16
