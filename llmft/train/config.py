"""The training config: one typed object, grouped by topic, checked once on load.

    llmft train --config config/demo.yaml --set training.learning_rate=1e-4

Groups: model, data, method (with lora, and dpo/orpo/simpo/grpo: docs/preference.md), training, distributed,
output. Unknown keys are errors that name the closest valid key. training.num_epochs, batch_size,
learning_rate, logging_steps and data.row_length default to "auto": chosen from the prepared data by
train/auto.py; a number given always wins. The v0 API's flat `model:` section (max_length,
learning_rate, batch_size, num_epochs, warmup_steps, weight_decay, save_steps, logging_steps,
output_dir all under `model`) loads as written: those keys move to their groups.
"""

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, PlainValidator, TypeAdapter, ValidationError, model_validator

from llmft.config import ConfigError, Strict, check
from llmft.data.config import DataConfig

METHODS = ("lora", "full", "qlora")  # supervised fine-tuning, and the weights any other method trains
PREFERENCE_METHODS = ("dpo", "orpo", "simpo")
METHOD_TYPES = (*METHODS, *PREFERENCE_METHODS, "grpo")
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "nca_pair", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
              "apo_zero", "apo_down", "sigmoid_norm")
AUTO = "auto"


def auto_or(kind: type, **limits):
    """A number (checked against `limits`) or "auto": chosen from the data once it is prepared (train/auto.py)."""
    number = TypeAdapter(Annotated[kind, Field(**limits)])

    def validate(value):
        if value == AUTO:
            return value
        try:
            return number.validate_python(value)
        except ValidationError as error:
            raise ValueError(f"{error.errors()[0]['msg']}, or 'auto'") from None

    return Annotated[kind | Literal["auto"], PlainValidator(validate, json_schema_input_type=kind | Literal["auto"])]

LEGACY_MODEL_KEYS = {
    "max_length": "data", "learning_rate": "training", "batch_size": "training", "num_epochs": "training",
    "warmup_steps": "training", "weight_decay": "training", "save_steps": "training",
    "logging_steps": "training", "output_dir": "output",
}


class ModelConfig(Strict):
    base_model: str = Field("tiny-r1", description="tiny-r1, deepseek-r1-1.5b, a hub id or a local folder.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of the base model.")
    trust_remote_code: bool = Field(False, description="Run the model repository's own code; off unless you trust it.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype: auto follows training.precision (bf16/fp16 weights only for LoRA).")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field(
        "sdpa", description="Attention kernel; sdpa and flash_attention_2 keep packed examples apart.")


class TrainDataConfig(DataConfig):
    train_file: str | None = Field(None, description="Training data (JSONL, JSON, CSV or Parquet); required to train.")
    row_length: auto_or(int, ge=16) = Field(
        "auto", description="Tokens per packed training row, at most max_length; auto: max_length, or shorter rows "
                            "when the data would fill too few for several steps per epoch (train/auto.py).")

    @model_validator(mode="after")
    def _rows_fit(self):
        if self.row_length != AUTO and self.row_length > self.max_length:
            raise ValueError(f"data.row_length {self.row_length} is more than data.max_length {self.max_length}")
        return self


class LoraSettings(Strict):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or all-linear (every linear layer but the output layer).")


class DpoSettings(Strict):
    beta: float = Field(0.1, gt=0, description="How far the policy may move from the reference (higher: less).")
    loss_type: Literal[DPO_LOSSES] = Field("sigmoid", description="TRL's DPO loss: sigmoid (the DPO paper), ipo, "
                                                                  "hinge, robust, apo_zero, ...")


class OrpoSettings(Strict):
    beta: float = Field(0.1, gt=0, description="Weight of the odds-ratio term beside the chosen answer's NLL.")


class SimpoSettings(Strict):
    beta: float = Field(2.0, gt=0, description="Scale of the length-normalized reward.")
    gamma: float = Field(0.5, ge=0, description="Target reward margin, the SimPO paper's gamma: loss -log sigmoid(beta x margin - gamma).")


class GrpoRewardTerms(Strict):
    """The optional reward terms beside the graders (train/rewards.py); each 0 is left out."""
    format: float = Field(0.0, ge=0, description="Weight of format_bonus: 1 when the think block closed and EOS came.")
    length_target: int | None = Field(None, ge=1, description="Completion tokens that cost nothing (length_penalty).")
    length_penalty: float = Field(0.0, ge=0, description="Reward lost per completion token beyond length_target.")

    @model_validator(mode="after")
    def _target_with_penalty(self):
        if self.length_penalty and self.length_target is None:
            raise ValueError("method.grpo.reward.length_penalty needs length_target (the tokens that cost nothing)")
        return self


class GrpoSettings(Strict):
    num_generations: int = Field(4, ge=2, description="Completions sampled per prompt (a group).")
    max_completion_length: int = Field(256, ge=1, description="Longest completion in tokens; a longer one is clipped.")
    beta: float = Field(0.0, ge=0, description="KL penalty toward the reference; 0: none (no reference model kept).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the completions.")
    graders: str | list[dict] | dict | None = Field(
        None, description="The rewards: a grader spec file (YAML or JSON) or the spec inline (docs/graders.md).")
    reward: GrpoRewardTerms = Field(default_factory=GrpoRewardTerms,
                                    description="Optional format and length terms added to the graders' rewards.")


class MethodConfig(Strict):
    type: Literal[METHOD_TYPES] = Field(
        "lora", description="Supervised: lora, full or qlora (4-bit, CUDA); preference: dpo, orpo, simpo; RL: grpo.")
    weights: Literal[METHODS] = Field(
        "lora", description="The weights a dpo, orpo, simpo or grpo run trains: lora, full or qlora.")
    lora: LoraSettings = Field(default_factory=LoraSettings, description="LoRA settings (lora and qlora).")
    dpo: DpoSettings = Field(default_factory=DpoSettings, description="DPO settings (method.type dpo).")
    orpo: OrpoSettings = Field(default_factory=OrpoSettings, description="ORPO settings (method.type orpo).")
    simpo: SimpoSettings = Field(default_factory=SimpoSettings, description="SimPO settings (method.type simpo).")
    grpo: GrpoSettings = Field(default_factory=GrpoSettings, description="GRPO settings (method.type grpo).")

    @property
    def tuning(self) -> str:
        """The weights this run trains: lora, full or qlora, whatever the method."""
        return self.type if self.type in METHODS else self.weights

    @property
    def settings(self) -> DpoSettings | OrpoSettings | SimpoSettings | GrpoSettings | None:
        """The section of this method (method.dpo for dpo, ...); None for supervised fine-tuning."""
        return None if self.type in METHODS else getattr(self, self.type)

    @model_validator(mode="after")
    def _sections_match_type(self):
        problems = []
        if self.type in METHODS and "weights" in self.model_fields_set and self.weights != self.type:
            problems.append(f"method.weights {self.weights} disagrees with method.type {self.type} (supervised "
                            f"fine-tuning trains the weights its type names; weights is for dpo, orpo, simpo, grpo)")
        for section in ("dpo", "orpo", "simpo", "grpo"):
            if section in self.model_fields_set and section != self.type:
                problems.append(f"method.{section} is given but method.type is {self.type}")
        if self.type == "grpo" and self.grpo.graders is None:
            problems.append("method.grpo.graders is required for grpo: a grader spec file or the spec inline")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class TrainingConfig(Strict):
    num_epochs: auto_or(float, gt=0) = Field(
        "auto", description="Passes over the training data; auto: from the data size, with a floor on steps "
                            "(train/auto.py).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides num_epochs).")
    batch_size: auto_or(int, ge=1) = Field(
        "auto", description="Rows per device per micro-step (a packed row is one); auto: several steps per epoch, "
                            "at most 8.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-steps per optimizer step.")
    learning_rate: auto_or(float, gt=0) = Field(
        "auto", description="Peak learning rate; auto: by method, LoRA rank and number of steps (train/auto.py).")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field("cosine", description="Decay after warmup.")
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps (wins over warmup_ratio when > 0).")
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0, description="Warmup as a share of all steps.")
    weight_decay: float = Field(0.0, ge=0.0, description="Decoupled weight decay (not on biases and norms).")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip the gradient norm to this; null: no clipping.")
    optimizer: Literal["adamw", "adafactor", "lamb"] = Field("adamw", description="adamw (fused on CUDA), adafactor or lamb.")
    adam_beta1: float = Field(0.9, gt=0, lt=1, description="First-moment decay (adamw, lamb).")
    adam_beta2: float = Field(0.999, gt=0, lt=1, description="Second-moment decay (adamw, lamb).")
    adam_epsilon: float = Field(1e-8, gt=0, description="Denominator epsilon (adamw, lamb).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Mixed precision: auto is bf16 (or fp16) on a GPU that has it, fp32 on CPU.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory.")
    torch_compile: bool = Field(
        False, description="Compile the model with torch.compile (inductor): on a CPU, steps 9-13% faster after 2-3 "
                           "minutes of compiling, the same losses (docs/benchmarks.md); worth it for long runs.")
    seed: int = Field(42, description="Seed of initialization, dropout and data order.")
    logging_steps: auto_or(int, ge=1) = Field(
        "auto", description="Record metrics every N optimizer steps (and at the last); auto: every step up to 100 "
                            "steps, else about 50 points.")
    eval_steps: int | None = Field(None, ge=1, description="Evaluate on the validation split every N steps.")
    eval_per_epoch: bool = Field(True, description="Evaluate at the end of every epoch.")
    save_steps: int | None = Field(None, ge=1, description="Save a checkpoint every N steps (and always at each epoch end).")
    save_total_limit: int = Field(3, ge=1, description="Checkpoints kept (the best one is always kept).")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many evaluations without a better validation loss.")


class DistributedConfig(Strict):
    strategy: Literal["ddp", "fsdp", "deepspeed"] = Field(
        "ddp", description="With several processes: ddp (a full copy per process), fsdp or deepspeed (sharded).")
    config_file: str | None = Field(
        None, description="fsdp: options (JSON, optional); deepspeed: its JSON config (required). See config/distributed/.")


class OutputConfig(Strict):
    output_dir: str = Field("./output", description="Checkpoints, final model, metrics.jsonl and summary.json.")
    final_model: Literal["best", "last"] = Field(
        "best", description="Which weights become the final model: best validation loss, or the last step.")


class TrainConfig(Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: TrainDataConfig = Field(default_factory=TrainDataConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="before")
    @classmethod
    def _move_legacy_keys(cls, values):
        """The v0 API's flat `model:` section: move each key to the group it belongs to."""
        if not isinstance(values, dict) or not isinstance(values.get("model"), dict):
            return values
        model = dict(values["model"])
        values = dict(values)
        for key, group in LEGACY_MODEL_KEYS.items():
            if key not in model:
                continue
            section = dict(values.get(group) or {})
            if key in section and section[key] != model[key]:
                raise ValueError(f"{key} is given as model.{key} and {group}.{key} with different values")
            section[key] = model.pop(key)
            values[group] = section
        values["model"] = model
        return values


def build_config(values: dict, *, where: str = "config") -> TrainConfig:
    """Check a nested dict of sections (model, data, method, training, distributed, output) once.

    Jobs build this dict from their fields; `load_config` from a YAML file and `--set` overrides.
    Every problem is in one ConfigError."""
    try:
        return check(TrainConfig, values, where=where)
    except ValueError as error:  # raised by the legacy-key move
        raise ConfigError(f"{where}: {error}") from None


def load_config(path: Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """Read YAML (or start from defaults), apply `key.path=value` overrides, check everything once."""
    values: dict = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as error:
            raise ConfigError(f"cannot read {path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path} must hold a mapping of sections (model, data, method, training, output)")
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {override!r}: expected key.path=value, e.g. training.learning_rate=1e-4")
        target = values
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"--set {override!r}: {part} is not a section")
        target[parts[-1]] = yaml.safe_load(raw)
    return build_config(values, where=where)
