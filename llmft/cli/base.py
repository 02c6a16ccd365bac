"""`llmft base ...` (alias `llmft model`): base models to train on, made offline.

    llmft base tiny --out DIR                      # the tiny Qwen2 with the real R1 tokenizer
    llmft base init --config config.json --tokenizer tiny-r1 --out DIR
    llmft base import FILE.gguf --out DIR          # a llama.cpp / Ollama GGUF as an ordinary HF folder
"""

from pathlib import Path

from llmft import exit_codes


def add_parser(commands) -> None:
    base = commands.add_parser("base", aliases=["model"], help="base models").add_subparsers(
        title="base commands")
    tiny = base.add_parser("tiny", help="write the tiny offline Qwen2 model with the real R1 tokenizer")
    tiny.add_argument("--out", type=Path, required=True, help="folder to write")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=_tiny)

    init = base.add_parser("init", help="write a model of a given shape with random weights (fast)")
    init.add_argument("--config", type=Path, required=True, help="a config.json (e.g. the 1.5B model's)")
    init.add_argument("--tokenizer", required=True, help="folder or model name whose tokenizer to copy (tiny-r1 works)")
    init.add_argument("--out", type=Path, required=True)
    init.add_argument("--dtype", choices=["float32", "bfloat16"], default="bfloat16")
    init.add_argument("--seed", type=int, default=0)
    init.set_defaults(run=_init)

    gguf = base.add_parser("import", help="write a GGUF causal LM (llama.cpp, Ollama) as a folder llmft trains and serves")
    gguf.add_argument("file", type=Path, help="the .gguf file")
    gguf.add_argument("--out", type=Path, required=True, help="folder to write (must not hold files yet)")
    gguf.set_defaults(run=_import)


def _tiny(args) -> int:
    from llmft.bases.tiny import build_tiny_model

    print(build_tiny_model(args.out, seed=args.seed))
    return exit_codes.OK


def _init(args) -> int:
    from llmft.bases.init import init_model

    print(init_model(args.config, tokenizer=args.tokenizer, out=args.out, dtype=args.dtype, seed=args.seed))
    return exit_codes.OK


def _import(args) -> int:
    from llmft.bases.gguf import import_gguf

    print(import_gguf(args.file, args.out))
    return exit_codes.OK
