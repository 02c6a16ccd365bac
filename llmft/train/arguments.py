"""Our config as Hugging Face Trainer's settings, beside train/config.py (as TRL's sft_config.py):

    arguments = training_arguments(config, output_dir, has_validation=True)
    Trainer(args=arguments, optimizer_cls_and_kwargs=optimizer_class_and_kwargs(config), ...)
    DPOConfig(**argument_values(config, output_dir, has_validation=True), beta=0.1)   # TRL's, the same base

Checkpoints go to the staging folder (train/checkpoints.py publishes them); the run's callbacks
(train/callbacks.py) write the metrics, so Trainer's own reporters stay off unless MLflow is set.
"""

import importlib.util
import json
import os
from pathlib import Path

import torch
from transformers import TrainingArguments

from llmft.config import ConfigError
from llmft.train import checkpoints
from llmft.train.config import AUTO, TrainConfig
from llmft.train.load import training_precision
from llmft.train.optim import Lamb


def training_arguments(config: TrainConfig, output_dir: Path, *, has_validation: bool) -> TrainingArguments:
    return TrainingArguments(**argument_values(config, output_dir, has_validation=has_validation))


def argument_values(config: TrainConfig, output_dir: Path, *, has_validation: bool) -> dict:
    """TrainingArguments' fields from our config, for Trainer's class or a TRL config class built on it."""
    t = config.training
    unresolved = [name for name in ("num_epochs", "batch_size", "learning_rate", "logging_steps")
                  if getattr(t, name) == AUTO]
    if unresolved:  # a caller's mistake, not a user's: train/run.py resolves before it builds the arguments
        raise ValueError(f"training.{', '.join(unresolved)} still 'auto': train/auto.resolve_auto chooses them first")
    precision = training_precision(config)
    cuda = torch.cuda.is_available()
    eval_strategy = "steps" if (t.eval_steps and has_validation) else "no"
    optim = {"adamw": "adamw_torch_fused" if cuda else "adamw_torch", "adafactor": "adafactor", "lamb": "adamw_torch"}
    return dict(
        output_dir=str(checkpoints.staging_dir(output_dir)),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps or -1,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler if t.lr_scheduler != "constant" else "constant_with_warmup",
        warmup_steps=t.warmup_steps if t.warmup_steps else t.warmup_ratio,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm or 0.0,
        optim=optim[t.optimizer],
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        adam_epsilon=t.adam_epsilon,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not cuda,
        activation_checkpointing=t.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        torch_compile=t.torch_compile,
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps if eval_strategy == "steps" else None,
        save_strategy="steps" if t.save_steps else "epoch",
        save_steps=t.save_steps or 500,
        save_total_limit=None,
        report_to=_reporters(),
        run_name=output_dir.name,
        remove_unused_columns=False,
        disable_tqdm=True,
        logging_nan_inf_filter=False,  # a NaN loss is logged as NaN, never hidden behind the window's mean
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every trained weight takes part in every step
        **_strategy_arguments(config),
    )


def _strategy_arguments(config: TrainConfig) -> dict:
    """FSDP or DeepSpeed for Trainer; DDP needs nothing (torchrun's environment is enough)."""
    d = config.distributed
    if d.strategy != "ddp" and not torch.cuda.is_available():
        # Accelerate, under Trainer, keeps FSDP only on GPUs: on CPU it drops the plugin and trains with DDP
        raise ConfigError(f"distributed.strategy {d.strategy} needs CUDA GPUs; on CPU use ddp (the default)")
    if d.strategy == "fsdp":
        return {"fsdp": True, "fsdp_config": _json_file(d.config_file, "distributed.config_file") if d.config_file else None}
    if d.strategy == "deepspeed":
        if d.config_file is None:
            raise ConfigError("distributed.strategy deepspeed needs distributed.config_file: "
                              "config/distributed/deepspeed_zero2.json or deepspeed_zero3.json")
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError("distributed.strategy deepspeed needs DeepSpeed: pip install 'llmft[deepspeed]' (CUDA)")
        _json_file(d.config_file, "distributed.config_file")  # checked here; DeepSpeed reads the file itself
        return {"deepspeed": d.config_file}
    return {}


def _json_file(path: str, field: str) -> dict:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{field}: cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{field}: {path} is not valid JSON (line {error.lineno}: {error.msg})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{field}: {path} must hold a JSON object")
    return value


def _reporters() -> list[str] | str:
    """MLflow when MLFLOW_TRACKING_URI is set (TensorBoard files are always written, by train/callbacks.py)."""
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return "none"
    if importlib.util.find_spec("mlflow") is None:
        raise ConfigError("MLFLOW_TRACKING_URI is set but MLflow is not installed: pip install 'llmft[mlflow]'")
    return ["mlflow"]


def optimizer_class_and_kwargs(config: TrainConfig) -> tuple[type, dict] | None:
    """LAMB (train/optim.py) for Trainer; None lets Trainer build adamw or adafactor from the arguments."""
    t = config.training
    if t.optimizer != "lamb":
        return None
    return Lamb, {"betas": (t.adam_beta1, t.adam_beta2), "eps": t.adam_epsilon, "weight_decay": t.weight_decay}
