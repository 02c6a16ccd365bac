"""Prepare the same data twice: a cold run (parse, validate, tokenize) against a cache hit.

    python bench/prepare_cache.py [FILE] [--repeat N]

Prints both timings and their ratio. The target (foundation issue) is a hit at least 10x faster.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("file", nargs="?", default=str(ROOT / "data" / "sample" / "brokerage_support.jsonl"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("LLMFT_HOME", str(ROOT / "var"))
    from llmft.bases.resolve import ensure_tiny_model
    from llmft.data import cache
    from llmft.data.prepare import prepare

    ensure_tiny_model()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["LLMFT_HOME"] = scratch  # an empty cache; the model folder is reused through a link
        (Path(scratch) / "models").mkdir()
        (Path(scratch) / "models" / "tiny-r1").symlink_to(ROOT / "var" / "models" / "tiny-r1")
        cold, hit = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            first = prepare(Path(args.file), model="tiny-r1", use_cache=False)
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            second = prepare(Path(args.file), model="tiny-r1")
            hit.append(time.perf_counter() - started)
            assert second.cache_hit and second.report["sha256"] == first.report["sha256"]
        print(f"data: {args.file} ({first.report['examples']} examples, {first.report['tokens']['total']:,} tokens)")
        print(f"cold prepare (tokenizer load, parse, validate, tokenize, write): median {statistics.median(cold):.3f} s")
        print(f"cache hit (hash sources and tokenizer files, read report):      median {statistics.median(hit):.4f} s")
        print(f"ratio: cache hit is {statistics.median(cold) / statistics.median(hit):.0f}x faster")
        print(f"cache folder: {cache.cache_dir()}")


if __name__ == "__main__":
    sys.exit(main())
