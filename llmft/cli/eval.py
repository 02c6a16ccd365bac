"""`llmft eval`: a model next to its base on the validation split of a data file.

    llmft eval --model var/runs/demo/final --base tiny-r1 --dataset data/sample/brokerage_support.jsonl
    llmft eval --model support-bot@production --tenant acme --dataset ds-0123456789abcdef
    llmft eval --model tiny-r1 --dataset FILE                  # a base model alone
    llmft eval --model var/runs/demo/final --base smollm2-135m --dataset VALIDATION_FILE --whole-file
    llmft evaluate --model tiny-r1 --dataset data/sample/business_math_validation.jsonl --whole-file \
        --graders graders.yaml --pass-k 4 --thinking-budgets 256,1024

The split is the one training makes (hash-based, same seed and ratio), so a model is never
scored on examples it was trained on; --whole-file scores every example of a file that training
held out as a whole (its `data.validation_file`). Answers are generated for up to --max-samples (200) of its
conversations, with --max-new-tokens auto (1.5x the longest reference, 16 to 1024) or a number.
The report prints as a table followed by three examples, or as JSON with --json (every example).
--graders names a grader spec (YAML or JSON; docs/graders.md): each side then reports grader.NAME,
grader.NAME.pass@K (--pass-k) and grader.NAME.budget_B (--thinking-budgets). A spec that cannot be
used exits 2 naming the file and the field, before any model is loaded. `llmft evaluate` is the same command.
"""

import argparse
import json
import sys
from pathlib import Path

from llmft import exit_codes


def run(args) -> int:
    from llmft.evaluate.graders import GraderSpecError, check_grading, read_spec
    from llmft.evaluate.run import NothingToEvaluate, evaluate_file, run_reasoning_of

    grading = {}
    if args.graders or args.pass_k > 1 or args.thinking_budgets:
        try:
            spec = read_spec(Path(args.graders)) if args.graders else None
            check_grading(spec, args.pass_k, args.thinking_budgets, args.answer_tokens)
        except GraderSpecError as error:
            print(f"llmft: {args.graders or '--graders'}: {error}", file=sys.stderr)
            return exit_codes.USAGE
        grading = {"graders": spec, "pass_k": args.pass_k, "thinking_budgets": args.thinking_budgets,
                   "answer_tokens": args.answer_tokens}
    model, base, dataset, reasoning = args.model, args.base, Path(args.dataset), None
    if _is_ref(model) or args.dataset.startswith("ds-"):
        if not args.tenant:
            print("llmft: a registry model (NAME:V, NAME@ALIAS) or a dataset id needs --tenant", file=sys.stderr)
            return exit_codes.ERRORS
        model, registry_base, dataset, reasoning = _from_registry(args)
        base = base or registry_base
    candidate = Path(model) if Path(model).is_dir() and base else None
    if candidate is not None and reasoning is None:
        reasoning = run_reasoning_of(candidate)  # a run's folder: prompted as it was trained (its summary.json)
    try:
        report = evaluate_file(base_model=base or model, candidate=candidate, data_file=dataset,
                               max_length=args.max_length, validation_ratio=args.validation_ratio,
                               whole_file=args.whole_file,
                               max_samples=args.max_samples, max_new_tokens=args.max_new_tokens,
                               reasoning=reasoning, **grading)
    except NothingToEvaluate as error:
        print(f"llmft: {error}", file=sys.stderr)
        return exit_codes.ERRORS
    except GraderSpecError as error:  # a record without a field the spec reads
        print(f"llmft: {args.graders}: {error}", file=sys.stderr)
        return exit_codes.USAGE
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(table(report))
        print(examples(report))
    return exit_codes.OK


def table(report: dict) -> str:
    sides = [side for side in ("base", "candidate") if side in report]
    keys = list(report[sides[0]])
    lines = [f"{report['examples']} validation examples of {report['dataset']} ({report['generated']} generated, "
             f"at most {report['max_new_tokens']} new tokens{' (auto)' if report['max_new_tokens_auto'] else ''}), "
             f"{report['seconds']} s",
             f"{'metric':24}" + "".join(f"{side:>14}" for side in sides)]
    for key in keys:
        lines.append(f"{key:24}" + "".join(f"{_fmt(report[side].get(key)):>14}" for side in sides))
    return "\n".join(lines)


def examples(report: dict, count: int = 3) -> str:
    """The first `count` examples: question, reference, and each side's answer with its ROUGE-L and fact hit."""
    sides = [side for side in ("base", "candidate") if side in report]
    lines = []
    for number, sample in enumerate(report["samples"][:count], 1):
        lines += ["", f"example {number}: {_line(sample['prompt'])}", f"  reference: {_line(sample['reference'])}"]
        for side in sides:
            scored = sample[side]
            lines.append(f"  {side} (rouge_l {_fmt(scored['rouge_l'])}, fact_hit {_fmt(scored['fact_hit'])}): "
                         f"{_line(scored['answer']) or '(no answer)'}")
    return "\n".join(lines)


def _line(text: str, width: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _fmt(value) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _is_ref(model: str) -> bool:
    from llmft.registry.service import REF

    return bool(REF.fullmatch(model))


def _from_registry(args) -> tuple[str, str | None, Path, dict | None]:
    """The version's folder, its base, the dataset's file and the version's reasoning contract (its lineage)."""
    from llmft.cli.models import tenant_principal
    from llmft.data.service import dataset_path, get_dataset
    from llmft.db.session import session_scope
    from llmft.registry.service import resolve, verified_folder
    from llmft.settings import load_settings

    settings = load_settings()
    with session_scope(settings.sqlalchemy_url) as session:
        principal = tenant_principal(session, args.tenant)
        model, base, reasoning = args.model, None, None
        if _is_ref(args.model):
            registered, version = resolve(session, principal=principal, ref=args.model)
            model, base = str(verified_folder(settings.llmft_home, version)), registered.base_model
            reasoning = (version.lineage or {}).get("reasoning")
        dataset = Path(args.dataset)
        if args.dataset.startswith("ds-"):
            dataset = dataset_path(get_dataset(session, principal=principal, dataset_id=args.dataset),
                                   settings.uploads_dir)
    return model, base, dataset, reasoning


def _budgets(value: str) -> list[int]:
    parts = [part.strip() for part in value.split(",")]
    if not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise argparse.ArgumentTypeError(f"comma-separated positive integers (256,1024), not {value!r}")
    return [int(part) for part in parts]


def _budget(value: str) -> int | str:
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"auto or a positive integer, not {value!r}")
    return int(value)


def add_parser(commands) -> None:
    parser = commands.add_parser("eval", aliases=["evaluate"],
                                 help="evaluate a model next to its base (perplexity, BLEU, ROUGE-L, reasoning, graders)")
    parser.add_argument("--model", required=True, help="NAME:V, NAME@ALIAS, a model or adapter folder, or a base model")
    parser.add_argument("--base", help="the base to compare with (default: the registry's, else none)")
    parser.add_argument("--dataset", required=True, help="a data file, or a dataset id (with --tenant)")
    parser.add_argument("--tenant", help="the tenant for registry models and dataset ids")
    parser.add_argument("--validation-ratio", type=float, default=0.1, help="as in training (default 0.1)")
    parser.add_argument("--whole-file", action="store_true",
                        help="every example of the dataset (a validation file training held out), not its split")
    parser.add_argument("--max-length", type=int, default=2048, help="as in training (default 2048)")
    parser.add_argument("--max-samples", type=int, default=200, help="conversations to generate for (default 200)")
    parser.add_argument("--max-new-tokens", type=_budget, default="auto",
                        help="generation budget: auto (default; 1.5x the longest reference, 16 to 1024) or a number")
    parser.add_argument("--graders", help="a grader spec, YAML or JSON (docs/graders.md): reports grader.NAME")
    parser.add_argument("--pass-k", type=int, default=1, help="with --graders: samples per conversation for pass@k")
    parser.add_argument("--thinking-budgets", type=_budgets, default=[],
                        help="with --graders: reasoning budgets in tokens, e.g. 256,1024")
    parser.add_argument("--answer-tokens", type=int, default=256,
                        help="answer tokens generated once a thinking budget closed the think block (default 256)")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON")
    parser.set_defaults(run=run)
