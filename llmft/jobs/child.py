"""The process of one job attempt: `python -m llmft.jobs.child JOB_ID FENCING_TOKEN`.

A fine-tune runs `llmft.train.run.train` on the job's resolved config, resuming from the last
committed checkpoint when there is one, then evaluates the result next to its base and
registers it as a version. A preference (dpo, orpo, simpo) or grpo run is evaluated the same way, on its
validation pairs' chosen answers or its validation prompts' reference answers (grpo graded by its own graders), so
every version has the same metrics for the promotion gate; what the run measured itself is added (`_measured`):
the DPO family's reward metrics on its validation split, grpo's last logged rewards. An export merges a LoRA version into its base; an evaluation
scores a model on a dataset. Progress is written as job events, and every write is made only
while the fencing token is still the job's. SIGTERM, a cancel or a pause request stops a fine-tune
with a checkpoint.
A job of several processes (`resources.processes`) trains through torchrun: this process
starts `torchrun ... -m llmft.jobs.child JOB_ID TOKEN --rank`, every rank runs `train` (rank 0
alone records events), and this process evaluates and registers the result as usual.
Exit codes (llmft/exit_codes.py): 0 succeeded, 3 stopped (checkpoint saved), 4 NaN or infinite loss
(stopped, the last good checkpoint kept), 1 failed (an "error" event says why).
"""

import json
import logging
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from llmft import exit_codes
from llmft.bases.resolve import base_revision
from llmft.db.events import record_event
from llmft.db.session import session_scope
from llmft.db.tables import Job, ModelVersion, RegisteredModel
from llmft.evaluate.graders import read_spec
from llmft.evaluate.run import evaluate_file, evaluate_fine_tune
from llmft.jobs.lease import start_attempt
from llmft.jobs.progress import Pace, advance
from llmft.jobs.service import resolved_hyperparameters
from llmft.monitor.alerts import notifier, raise_alert, rules_for
from llmft.monitor.watch import TrainingWatch
from llmft.registry.export import merge_adapter
from llmft.registry.service import register_export, register_version, verified_folder
from llmft.settings import load_settings
from llmft.train import checkpoints
from llmft.train.config import METHODS, TrainConfig
from llmft.train.launch import launch
from llmft.train.run import RunResult, train

RECORDED = {"data_ready", "started", "checkpoint", "eval", "metrics", "early_stopping", "stopping", "trained",
            "evaluating", "evaluated", "nan_loss", "reward_failed"}


def main(job_id: str, token: int, *, rank: bool = False) -> int:
    url = load_settings().sqlalchemy_url
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        kind, config = job.kind, job.config
    run = _rank if rank else {"fine_tune": _fine_tune, "export": _export, "evaluation": _evaluation}[kind]
    if not rank:  # the attempt counts now that its trainer starts (llmft/jobs/lease.py)
        with session_scope(url) as session:
            if not start_attempt(session, job_id=job_id, token=token):
                raise SystemExit("the job was taken over by another runner")
    try:
        return run(url, job_id, token, config)
    except Exception as error:  # the outer edge of a job: record why, exit non-zero
        logging.exception("%s job %s failed", kind, job_id)
        where = f"rank {os.environ.get('RANK')}: " if rank else ""
        with session_scope(url) as session:
            record_event(session, session.get(Job, job_id), "error", f"{where}{type(error).__name__}: {error}"[:2000],
                         {}, level="error")
        return 1
    finally:
        notifier.flush()  # alerts raised by this job reach their webhooks before the process ends


@contextmanager
def _fenced(url: str, job_id: str, token: int):
    """A session holding the job row, only while this attempt's fencing token is still the job's."""
    with session_scope(url) as session:
        job = session.scalar(select(Job).where(Job.id == job_id, Job.fencing_token == token))
        if job is None:
            raise SystemExit("the job was taken over by another runner")
        yield session, job


def _fine_tune(url: str, job_id: str, token: int, raw_config: dict) -> int:
    config = TrainConfig.model_validate(raw_config)
    with session_scope(url) as session:
        processes = session.get(Job, job_id).processes
    on_event, should_stop = _hooks(url, job_id, token)
    if processes > 1:
        result = _train_with_torchrun(job_id, token, config, processes)
    else:
        result = train(config, resume=checkpoints.latest(config.output.output_dir) is not None,
                       on_event=on_event, should_stop=should_stop, progress=False)
    if result.status != "succeeded":
        return exit_codes.for_status(result.status)
    if config.method.type in METHODS:
        evaluation = _evaluate_fine_tune(url, job_id, config.model.base_model, result, on_event)
    else:
        evaluation = _evaluate_method_run(url, job_id, config, result, on_event)
    if evaluation is not None:
        on_event({"type": "evaluated", "base": evaluation["base"], "candidate": evaluation["candidate"]})
    with _fenced(url, job_id, token) as (session, job):
        version = register_version(session, job=job, final_dir=result.final_dir, summary=result.summary,
                                   home=load_settings().llmft_home, evaluation=evaluation,
                                   base_revision=base_revision(config.model.base_model))
        _registered(session, job, version)
    return 0


def _rank(url: str, job_id: str, token: int, raw_config: dict) -> int:
    """One process of a torchrun job: train (rank 0 records the events, every rank polls for a cancel)."""
    config = TrainConfig.model_validate(raw_config)
    on_event, should_stop = _hooks(url, job_id, token)
    result = train(config, resume=checkpoints.latest(config.output.output_dir) is not None,
                   on_event=on_event, should_stop=should_stop, progress=False)
    return exit_codes.for_status(result.status)


def _train_with_torchrun(job_id: str, token: int, config: TrainConfig, processes: int) -> RunResult:
    """torchrun with `processes` ranks of this job. SIGTERM (cancel, worker shutdown) reaches torchrun
    with this process (one process group); torchrun passes it to the ranks, which checkpoint together
    while we wait. Killed, this process takes torchrun with it, and torchrun its ranks."""
    launched = launch(["llmft.jobs.child", job_id, str(token), "--rank"], config=config, resume=True,
                      nproc_per_node=processes, forward_sigterm=False)  # resume=True: the ranks resume when they can
    summary, output_dir = launched.summary, Path(config.output.output_dir).resolve()
    if launched.code == 0 and summary is not None:
        return RunResult("succeeded", output_dir, Path(summary.final_dir), summary, Path(summary.data.folder))
    if summary is not None and summary.status != "succeeded":
        return RunResult(summary.status, output_dir, None, summary, Path(summary.data.folder))
    raise RuntimeError(f"torchrun with {processes} processes exited with code {launched.code}; "
                       "the ranks' errors are above")


def _hooks(url: str, job_id: str, token: int):
    """on_event (progress and events, fenced) and should_stop (the job's cancel or pause flag, read at most once
    a second)."""
    last_check = [0.0, False]
    pace: list[Pace] = [None]
    settings = load_settings()
    with session_scope(url) as session:
        rules = rules_for(session, session.get(Job, job_id).tenant_id)

    def fire(rule: str, severity: str, message: str, key: str, data: dict) -> None:
        with _fenced(url, job_id, token) as (session, job):
            raise_alert(session, settings=settings, job=job, rule=rule, severity=severity, message=message, key=key,
                        data=data)

    watch = TrainingWatch(rules, fire, job_id=job_id)

    def on_event(event: dict) -> None:
        event = _finite(event)  # a NaN loss is recorded as null: JSON (and PostgreSQL) has no NaN
        if event["type"] == "succeeded":  # training is; the job still evaluates and registers
            event = {**event, "type": "trained"}
        if event["type"] not in RECORDED:
            return
        with _fenced(url, job_id, token) as (session, job):
            job.progress, pace[0] = advance(job.progress, event, pace[0], at=time.time())
            if event["type"] == "data_ready":  # the trainer chose the "auto" hyperparameters: the job shows them
                job.hyperparameters = resolved_hyperparameters(job.hyperparameters, event["hyperparameters"])
            data = {k: v for k, v in event.items() if k not in ("type", "summary")}
            record_event(session, job, event["type"], _message(event), data,
                         level="error" if event["type"] in ("nan_loss", "reward_failed") else "info")
        watch(event)

    def should_stop() -> bool:
        if time.monotonic() - last_check[0] > 1.0:
            with session_scope(url) as session:
                flags = session.execute(select(Job.cancel_requested, Job.pause_requested).where(Job.id == job_id)).one()
                last_check[1] = any(flags)
            last_check[0] = time.monotonic()
        return last_check[1]

    return on_event, should_stop


def _export(url: str, job_id: str, token: int, config: dict) -> int:
    """Merge the source adapter into its base and register the full model as the next version."""
    home = load_settings().llmft_home
    with session_scope(url) as session:
        source = session.get(ModelVersion, config["version_id"])
        base_model = session.get(RegisteredModel, source.model_id).base_model
        folder = verified_folder(home, source)
        record_event(session, session.get(Job, job_id), "merging", f"merging the adapter into {base_model}")
    merged = merge_adapter(base_model=base_model, adapter_dir=folder,
                           out=Path(config["output"]["output_dir"]) / "merged")
    with _fenced(url, job_id, token) as (session, job):
        version = register_export(session, job=job, source=session.get(ModelVersion, config["version_id"]),
                                  folder=merged, home=home)
        _registered(session, job, version)
    return 0


def _evaluation(url: str, job_id: str, token: int, config: dict) -> int:
    """Evaluate a version next to its base (or a base alone) on a dataset's validation split."""
    candidate, reasoning = None, None
    if config["version_id"]:
        with session_scope(url) as session:
            version = session.get(ModelVersion, config["version_id"])
            candidate = verified_folder(load_settings().llmft_home, version)
            reasoning = (version.lineage or {}).get("reasoning")  # prompted as it is served
    with session_scope(url) as session:
        record_event(session, session.get(Job, job_id), "evaluating", f"evaluating {config['model']}")
    report = evaluate_file(base_model=config["base_model"], candidate=candidate, data_file=Path(config["data_file"]),
                           max_length=config["max_length"], max_samples=config["max_samples"],
                           max_new_tokens=config["max_new_tokens"], reasoning=reasoning,
                           **config.get("grading", {}))
    report["model"] = config["model"]
    with _fenced(url, job_id, token) as (session, job):
        job.result = report
        side = report.get("candidate", report["base"])
        record_event(session, job, "evaluated", f"eval_loss {side['eval_loss']:.4f}, rouge_l {side['rouge_l']:.4f}, "
                     f"fact_hit {side['fact_hit']:.4f}", {k: report[k] for k in ("base", "candidate") if k in report})
    return 0


def _evaluate_fine_tune(url: str, job_id: str, base_model: str, result: RunResult, on_event, *,
                        split: str = "validation", graders=None) -> dict | None:
    """The fine-tune next to its base on the validation split it was trained with, as the settings bound it
    (JOB_EVAL_MAX_SAMPLES, JOB_EVAL_MAX_NEW_TOKENS: by default up to 200 examples, the "auto" budget; graded by
    JOB_EVAL_GRADERS when set, else by `graders`, so the version records grader.NAME metrics for the gate); None
    (and a warning event) when there is none or evaluation itself failed: the fine-tune is registered either way."""
    if not result.summary.data.validation_examples:
        _warn(url, job_id, "no validation examples: the version is registered without an evaluation")
        return None
    on_event({"type": "evaluating"})
    try:
        settings = load_settings()
        budget = settings.job_eval_max_new_tokens
        if settings.job_eval_graders:
            graders = read_spec(settings.job_eval_graders)
        report = evaluate_fine_tune(base_model=base_model, final_dir=result.final_dir, data_dir=result.data_dir,
                                    split=split, max_samples=settings.job_eval_max_samples,
                                    max_new_tokens=budget if budget == "auto" else int(budget), graders=graders)
    except Exception as error:  # the outer edge of the evaluation step: record it, register without it
        logging.exception("evaluation of job %s failed", job_id)
        _warn(url, job_id, f"evaluation failed ({type(error).__name__}: {error}); registered without it")
        return None
    report["dataset"] = result.summary.data.sources[-1]["name"]
    return report


def _evaluate_method_run(url: str, job_id: str, config: TrainConfig, result: RunResult, on_event) -> dict | None:
    """A dpo/orpo/simpo or grpo run, evaluated as a supervised fine-tune is (the same keys, so one promotion gate
    fits every version): next to its base on its validation split as reference conversations (a pair's prompt
    and chosen answer, a prompt and its reference answer: data/prepare_rows.py), a grpo run graded by its own
    graders unless JOB_EVAL_GRADERS names others. What the run measured itself is added to the candidate
    (`_measured`); with no reference conversations, or when generation fails, that alone is the evaluation."""
    measured = _measured(url, job_id, config.method.type, result)
    conversations = result.data_dir / f"{CONVERSATIONS}.jsonl"
    if not (conversations.is_file() and conversations.stat().st_size):
        _warn(url, job_id, "no validation examples with a reference answer: the version is evaluated by its "
                           "training metrics alone")
        return measured
    graders = None
    if config.method.type == "grpo":
        from llmft.train.grpo import grader_spec  # trl's trainer: loaded by the run already

        graders = grader_spec(config)
    report = _evaluate_fine_tune(url, job_id, config.model.base_model, result, on_event, split=CONVERSATIONS,
                                 graders=graders)
    if report is None or measured is None:
        return report or measured
    report["candidate"] |= measured.pop("candidate")
    report["measured"] = {key: value for key, value in measured.items() if key not in ("base", "dataset")}
    return report


CONVERSATIONS = "validation.conversations"  # a rows folder's validation split as SFT conversations


# what a preference or grpo run's evaluation records from metrics.jsonl: the DPO family's TRL metrics on the
# validation split (eval_ prefixed; its eval_loss is a preference loss, kept as preference_loss), grpo's reward
# and RL health at its last log
MEASURED_PREFIXES = {"preference": ("eval_loss", "eval_rewards/", "eval_logps/"),
                     "grpo": ("reward", "rewards/", "zero_variance_share", "clipped_share", "completion_length", "kl")}
MEASURED_NAMES = {"eval_loss": "preference_loss"}


def _measured(url: str, job_id: str, method: str, result: RunResult) -> dict | None:
    """What a dpo/orpo/simpo or grpo run logged itself: for the DPO family the last validation log
    (eval_rewards/accuracies, eval_rewards/margins, preference_loss, ...), for grpo the last training log's rewards
    (reward_mean, rewards/NAME/mean, clipped_share, ...), as an evaluation report whose `candidate` holds them.
    None (and a warning event) when the run logged none."""
    kind = "grpo" if method == "grpo" else "preference"
    wanted = MEASURED_PREFIXES[kind]
    path = result.output_dir / "metrics.jsonl"
    logs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line] \
        if path.exists() else []
    found = [log for log in logs if any(key.startswith(wanted) for key in log)]
    if not found:
        what = "validation reward metrics" if kind == "preference" else "reward metrics"
        _warn(url, job_id, f"the run logged no {what}")
        return None
    last = found[-1]
    measured = {MEASURED_NAMES.get(key, key): value for key, value in last.items()
                if key.startswith(wanted) and isinstance(value, int | float)}
    split = "validation" if kind == "preference" else "train"
    return {"source": "training_metrics", "method": method, "split": split, "step": last.get("step"),
            "examples": result.summary.data.validation_examples if kind == "preference"
            else result.summary.data.train_examples,
            "dataset": result.summary.data.sources[-1]["name"], "base": {}, "candidate": measured}


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _registered(session, job: Job, version: ModelVersion) -> None:
    record_event(session, job, "registered", f"registered as {job.fine_tuned_model}",
                 {"model": job.fine_tuned_model, "version_id": version.id})


def _warn(url: str, job_id: str, message: str) -> None:
    with session_scope(url) as session:
        record_event(session, session.get(Job, job_id), "warning", message, {}, level="warning")


def _number(value) -> str:
    return "NaN" if value is None else f"{value:.4f}"  # None: a NaN or infinity made JSON-safe


def _message(event: dict) -> str:
    kind = event["type"]
    if kind == "metrics":
        return f"step {event['step']}: loss {_number(event.get('loss'))}"
    if kind == "eval":
        return f"step {event['step']}: validation loss {_number(event.get('eval_loss'))}"
    if kind == "checkpoint":
        return f"checkpoint at step {event['step']}"
    if kind == "nan_loss":
        return (f"the loss or gradient became NaN or infinite at step {event['step']}; stopped, last good checkpoint: "
                f"{event.get('last_good_checkpoint') or 'none'}")
    if kind == "reward_failed":
        return f"{event['error']} (step {event['step']}); stopped, last checkpoint: {event['last_good_checkpoint'] or 'none'}"
    return kind.replace("_", " ")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), rank="--rank" in sys.argv[3:]))
