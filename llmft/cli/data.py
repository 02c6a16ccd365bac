"""`llmft data ...`: check, prepare and look at a data file before training on it.

    llmft data validate FILE [--model tiny-r1] [--max-length N] [--json] [--kind auto] [--graders G.yaml]
    llmft data prepare FILE --out DIR [--model tiny-r1] [--validation-file F] [--kind auto]
    llmft data preview FILE [--model tiny-r1] [-n 3]

--kind says what the file holds: sft conversations, preference pairs (DPO, ORPO, SimPO) or prompts (GRPO);
auto (the default) tells it from the first record (data/kinds.py). --graders checks that prompts carry the fields
and the reference answer the spec's graders read. Exit code 1 when the data has errors (the report names the
line, field and problem of each).
"""

import argparse
import json
import sys
from pathlib import Path

from llmft import exit_codes


def add_parser(commands) -> None:
    data = commands.add_parser("data", help="validate, prepare and preview data").add_subparsers(title="data commands")
    validate = data.add_parser("validate", help="report every problem and the statistics of a data file")
    _data_arguments(validate)
    validate.add_argument("--json", action="store_true", help="print the report as JSON")
    validate.set_defaults(run=_validate)

    prepare = data.add_parser("prepare", help="clean, split, tokenize and write a data file for training")
    _data_arguments(prepare)
    prepare.add_argument("--out", type=Path, required=True, help="folder for the prepared data")
    prepare.add_argument("--validation-file", help="a separate validation file (instead of a split)")
    prepare.add_argument("--validation-ratio", type=float, help="share held out for validation (default 0.1)")
    prepare.add_argument("--seed", type=int, help="seed of the split (default 42)")
    prepare.add_argument("--on-invalid", choices=["error", "drop"], help="records with errors (default error)")
    prepare.add_argument("--on-overlength", choices=["error", "drop", "truncate"], help="default error")
    prepare.add_argument("--no-cache", action="store_true", help="prepare again even if cached")
    prepare.add_argument("--json", action="store_true", help="print the report as JSON")
    prepare.set_defaults(run=_prepare)

    preview = data.add_parser("preview", help="print examples with the trained spans marked")
    _data_arguments(preview)
    preview.add_argument("-n", type=int, default=3, help="how many examples (default 3)")
    preview.add_argument("--start", type=int, default=1, help="first record number to show (default 1)")
    preview.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    preview.set_defaults(run=_preview)


def _data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="JSONL, JSON, CSV or Parquet file")
    parser.add_argument("--model", default="tiny-r1", help="base model: tiny-r1, a hub id or a folder (default tiny-r1)")
    parser.add_argument("--max-length", type=int, help="longest example in tokens (default 2048)")
    parser.add_argument("--think-mode", choices=["mask", "train", "omit"], help="assistant turns without reasoning")
    parser.add_argument("--reasoning-format", choices=["auto", "template", "think_tags", "drop"],
                        help="where reasoning goes in the render (default auto; drop only when asked)")
    parser.add_argument("--train-on-inputs", action="store_true", default=None, help="also train on prompts")
    parser.add_argument("--kind", choices=["auto", "sft", "preference", "prompts"], default="auto",
                        help="sft conversations, preference pairs or RL prompts (default auto: from the first record)")
    parser.add_argument("--graders", type=Path, help="prompts: a grader spec (YAML or JSON) whose record fields and "
                                                     "reference each prompt must carry")


DATA_OPTIONS = ("max_length", "think_mode", "reasoning_format", "train_on_inputs", "validation_file", "validation_ratio", "seed",
                "on_invalid", "on_overlength")  # the DataConfig fields these commands take as options


def _data_config(args):
    from llmft.config import check
    from llmft.data.config import DataConfig

    values = {name: getattr(args, name) for name in DATA_OPTIONS if getattr(args, name, None) is not None}
    return check(DataConfig, values, where="options")


def _grader_spec(args):
    """The --graders spec, or None; a spec that cannot be read is a usage error naming the file and the field."""
    from llmft.config import ConfigError
    from llmft.evaluate.graders import GraderSpecError, read_spec

    if args.graders is None:
        return None
    try:
        return read_spec(args.graders)
    except GraderSpecError as error:
        raise ConfigError(f"{args.graders}: {error}") from None


def _validate(args) -> int:
    from llmft.bases.resolve import load_tokenizer
    from llmft.data.kinds import check_kind, kind_report
    from llmft.data.report import format_report

    config = _data_config(args)
    kind, checked = check_kind(args.file, args.kind, tokenizer=load_tokenizer(args.model), config=config,
                               spec=_grader_spec(args))
    report = kind_report(kind, checked, source=str(args.file), model=args.model, max_length=config.max_length)
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else format_report(report))
    return exit_codes.ERRORS if report["errors"] else exit_codes.OK


def _prepare(args) -> int:
    from llmft.data.kinds import detect_file_kind
    from llmft.data.prepare import DataError, prepare
    from llmft.data.prepare_rows import prepare_rows
    from llmft.data.report import format_report

    config = _data_config(args)
    kind = detect_file_kind(args.file) if args.kind == "auto" else args.kind
    try:
        if kind == "sft":
            prepared = prepare(args.file, model=args.model, config=config, out=args.out, use_cache=not args.no_cache)
        else:
            prepared = prepare_rows(args.file, kind=kind, model=args.model, config=config, out=args.out,
                                    spec=_grader_spec(args))
    except DataError as error:
        print(json.dumps(error.report, ensure_ascii=False, indent=1) if args.json else format_report(error.report))
        print("llmft: nothing written; fix the errors above or pass --on-invalid drop", file=sys.stderr)
        return exit_codes.ERRORS
    report = prepared.report
    print(json.dumps(report, ensure_ascii=False, indent=1) if args.json else format_report(report))
    if not args.json:
        print(f"wrote {prepared.folder} ({'cache hit' if prepared.cache_hit else 'prepared'})")
    return exit_codes.OK


def _preview(args) -> int:
    from llmft.bases.resolve import load_tokenizer
    from llmft.data.kinds import check_kind
    from llmft.data.preview import format_example, format_rows, reasoning_note

    config = _data_config(args)
    tokenizer = load_tokenizer(args.model)
    kind, checked = check_kind(args.file, args.kind, tokenizer=tokenizer, config=config, spec=_grader_spec(args))
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    if kind != "sft":
        print(format_rows(kind, checked, tokenizer, think_mode=config.think_mode, start=args.start, n=args.n,
                          color=color))
        if checked.errors:
            print(f"({checked.errors} records with errors not shown; run `llmft data validate`)", file=sys.stderr)
        return exit_codes.OK
    shown = 0
    for example, tokens in zip(checked.examples, checked.tokenized, strict=True):
        if example.record < args.start or shown >= args.n:
            continue
        where = f"line {example.line}" if example.line else f"record {example.record}"
        note = reasoning_note(example, tokens, checked.reasoning_format)
        print(f"── {where}: {len(tokens)} tokens, {tokens.trained_tokens} trained{', ' + note if note else ''} "
              f"({'green' if color else '⟦…⟧'} = trained) ──")
        print(format_example(tokens, tokenizer, color=color))
        shown += 1
    if checked.errors:
        print(f"({checked.errors} records with errors not shown; run `llmft data validate`)", file=sys.stderr)
    return exit_codes.OK
