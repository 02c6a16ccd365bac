"""GRPO: reinforcement fine-tuning whose rewards are the evaluation graders, through trl.GRPOTrainer behind our
run (train/lifecycle.py).

    llmft train --config config/grpo.yaml    # method.type: grpo, method.grpo.graders: config/graders/....yaml

prompt file -> checked prompts with their references and grader fields, split and rendered
(data/prepare_rows.py, data/rl_prompts.py) -> rows {prompt (as serving builds it), reference, record, line}
-> "auto" hyperparameters -> TRL's GRPOTrainer: method.grpo.num_generations completions per prompt, sampled by HF generate at
method.grpo.temperature up to max_completion_length tokens, scored by one reward per grader plus the
optional format and length terms (train/rewards.py) -> atomic checkpoints, metrics.jsonl (with the RL
health names of train/rl_health.py), events, stop and NaN stop as in every run -> final/ and summary.json
(method grpo, beta).

training.batch_size counts prompts: a step trains on batch_size x num_generations completions. The prompts
are split as SFT data is (data.validation_ratio or data.validation_file); the validation prompts are held
out, not evaluated during the run (that would generate again): the graders measure the result afterwards
(`llmft evaluate --graders`). A reward that raises ends the run with status reward_failed (exit code 5) and
its last checkpoint kept. The rows are written to output_dir/data (train.jsonl, validation.jsonl,
report.json, manifest.json).
"""

import json
from pathlib import Path

from datasets import Dataset
from datasets.utils import logging as datasets_logging
from transformers import set_seed
from transformers.utils import logging as hf_logging
from trl import GRPOConfig, GRPOTrainer

from llmft.bases.resolve import load_tokenizer, parameter_count, resolve_model
from llmft.config import ConfigError
from llmft.data.config import DataConfig
from llmft.data.prepare import Prepared
from llmft.data.prepare_rows import prepare_rows
from llmft.evaluate.graders import GraderSpec, GraderSpecError, load_spec, read_spec
from llmft.train import distributed
from llmft.train.arguments import argument_values, optimizer_class_and_kwargs
from llmft.train.auto import hyperparameters, resolve_auto
from llmft.train.callbacks import EventHook, StopCheck
from llmft.train.config import TrainConfig
from llmft.train.lifecycle import Run, RunData, RunResult, begin, callbacks, finish, fit
from llmft.train.load import load_base, lora_config
from llmft.train.rewards import reward_functions
from llmft.train.rl_health import RlHealthLog
from llmft.train.trainer import RunTrainerMixin


def train_grpo(config: TrainConfig, *, resume: bool = False, on_event: EventHook | None = None,
               should_stop: StopCheck | None = None, progress: bool = True) -> RunResult:
    """One grpo run, start to end; train/run.py's `train` calls it for method.type grpo."""
    spec = grader_spec(config)
    run = begin(config, resume=resume, on_event=on_event, should_stop=should_stop)
    tokenizer = load_tokenizer(config.model.base_model, trust_remote_code=config.model.trust_remote_code)
    rows, data = grpo_data(config, spec, run.output_dir / "data")
    config, chosen = resolve_auto(config, train_rows=len(rows), row_length=config.data.max_length,
                                  processes=distributed.world_size(),
                                  parameters=parameter_count(resolve_model(config.model.base_model)))
    chosen.pop("row_length", None)  # prompts are not packed
    run.on_event({"type": "data_ready", "train_examples": len(rows), "train_rows": len(rows),
                  "validation_examples": data.summary.validation_examples, "data_sha256": data.summary.sha256,
                  "hyperparameters": hyperparameters(config), "auto": sorted(chosen)})
    set_seed(config.training.seed)
    hf_logging.disable_progress_bar()
    datasets_logging.disable_progress_bar()
    trainer = grpo_trainer(config, run, tokenizer, spec, rows, progress=progress)
    output, tokens_seen = fit(trainer, run)
    return finish(run, trainer, output, config=config, data=data, tokens_seen=tokens_seen, chosen=chosen,
                  beta=config.method.grpo.beta)


def grader_spec(config: TrainConfig) -> GraderSpec:
    """method.grpo.graders checked once: a spec file, or the spec inline; ConfigError naming every problem."""
    graders = config.method.grpo.graders
    try:
        return read_spec(Path(graders)) if isinstance(graders, str) else load_spec(graders)
    except GraderSpecError as error:
        raise ConfigError(f"method.grpo.graders: {error}") from None


def grpo_trainer(config: TrainConfig, run: Run, tokenizer, spec: GraderSpec, rows: list[dict], *,
                 progress: bool = False) -> "GrpoRun":
    """TRL's GRPOTrainer over `rows`, with our model, arguments and callbacks and the graders as rewards."""
    grpo = config.method.grpo
    eos = {tokenizer.eos_token_id}
    functions, weights = reward_functions(spec, tokenizer=tokenizer, eos_ids=eos, **grpo.reward.model_dump())
    values = argument_values(config, run.output_dir, has_validation=False)
    prompts = values["per_device_train_batch_size"]
    values.update(per_device_train_batch_size=prompts * grpo.num_generations,
                  per_device_eval_batch_size=prompts * grpo.num_generations)
    args = GRPOConfig(**values, num_generations=grpo.num_generations, max_completion_length=grpo.max_completion_length,
                      beta=grpo.beta, temperature=grpo.temperature, reward_weights=weights, log_completions=False)
    return GrpoRun(
        model=load_base(config),
        reward_funcs=functions,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(config),
        callbacks=[RlHealthLog(), *callbacks(run, config, evaluate=False, progress=progress)],
        optimizer_cls_and_kwargs=optimizer_class_and_kwargs(config),
        record=run.record,
    )


class GrpoRun(RunTrainerMixin, GRPOTrainer):
    """Our run's parts (trainer.RunTrainerMixin) on TRL's GRPOTrainer: the prompt as serving tokenizes it, and the
    tokens each step runs through the model (its prompts and completions)."""

    def __init__(self, *args, optimizer_cls_and_kwargs=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer_cls_and_kwargs = optimizer_cls_and_kwargs  # LAMB: TRL's trainers do not pass it on

    def _tokenize_prompts(self, prompts: list):
        """The rendered prompt holds its special tokens already (BOS): tokenized as serving does, adding none."""
        return self.processing_class(text=prompts, add_special_tokens=False)["input_ids"], None, {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            self.count_tokens(int(inputs["prompt_mask"].sum()) + int(inputs["completion_mask"].sum()))
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def create_model_card(self, *args, **kwargs):
        """TRL writes a README.md beside each checkpoint; a run's record is its summary.json."""


def grpo_data(config: TrainConfig, spec: GraderSpec, folder: Path) -> tuple[list[dict], RunData]:
    """The training prompts, checked with the fields the graders read, split and rendered (data/prepare_rows.py),
    written to `folder` by rank 0 and read back by every rank; as the trainer takes them: the record as JSON
    text (rewards.py). The validation split is held out for measuring the run afterwards."""
    options = DataConfig(**config.data.model_dump(exclude={"train_file", "row_length"}))
    with distributed.main_first():
        if distributed.is_main():
            prepare_rows(Path(config.data.train_file), kind="prompts", model=config.model.base_model, config=options,
                         out=folder, spec=spec)
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    rows = [{**row, "record": json.dumps(row["record"], ensure_ascii=False)}
            for row in map(json.loads, (folder / "train.jsonl").read_text(encoding="utf-8").splitlines())]
    return rows, RunData.prepared(Prepared(folder, report, manifest, cache_hit=False))
