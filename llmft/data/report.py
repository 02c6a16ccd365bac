"""The validation report: statistics a person can act on, as a dict (JSON) or as text."""

import math
from collections import Counter

from llmft.data.issues import CODES
from llmft.data.pack import pack_best_fit, packing_efficiency
from llmft.data.validate import Checked


def build_report(checked: Checked, *, source: str, model: str, max_length: int) -> dict:
    tokenized, examples = checked.tokenized, checked.examples
    lengths = [len(t) for t in tokenized]
    n = len(examples)
    bins = pack_best_fit(lengths, max_length) if lengths else []
    counts = checked.counts
    return {
        "source": source,
        "model": model,
        "max_length": max_length,
        "records": counts["records"],
        "examples": n,
        "invalid": counts["invalid"],
        "errors": checked.errors,
        "warnings": checked.warnings,
        "issues_by_code": dict(sorted(checked.issue_counts.items())),
        "issues": [issue.to_dict() for issue in sorted(checked.issues, key=_issue_order)],
        "tokens": {
            "total": sum(lengths),
            "prompt": sum(t.prompt_tokens for t in tokenized),
            "reasoning": sum(t.reasoning_tokens for t in tokenized),
            "answer": sum(t.answer_tokens for t in tokenized),
            "trained": sum(t.trained_tokens for t in tokenized),
        },
        "length": _length_stats(lengths, max_length),
        "reasoning_format": checked.reasoning_format,
        "with_reasoning": _share(sum(e.has_reasoning for e in examples), n),  # in the data
        "with_reasoning_kept": _share(sum(t.reasoning_tokens > 0 for t in tokenized), n),  # in the rendered text
        "with_empty_reasoning": _share(sum(e.has_empty_reasoning for e in examples), n),
        "multi_turn": sum(sum(m.role == "user" for m in e.messages) > 1 for e in examples),
        "cleaning": {key: counts[key] for key in (
            "normalized", "duplicates_exact", "duplicates_normalized", "too_long", "dropped_overlength", "truncated")},
        "epoch": {
            "tokens": sum(lengths),
            "trained_tokens": sum(t.trained_tokens for t in tokenized),
            "packed_rows": len(bins),
            "packing_efficiency": round(packing_efficiency(lengths, bins, max_length), 4),
        },
    }


def format_report(report: dict, *, max_issues: int = 50) -> str:
    """The report as a person reads it in a terminal."""
    t, length, epoch, cleaning = report["tokens"], report["length"], report["epoch"], report["cleaning"]
    lines = [
        f"{report['source']}: {report['examples']} examples from {report['records']} records, "
        f"{report['errors']} errors, {report['warnings']} warnings (model {report['model']}, "
        f"max_length {report['max_length']})",
        f"tokens       total {t['total']:,}  prompt {t['prompt']:,}  reasoning {t['reasoning']:,}  "
        f"answer {t['answer']:,}  trained {t['trained']:,}",
    ]
    if report["examples"]:
        lines.append(f"length       min {length['min']}  mean {length['mean']}  p50 {length['p50']}  "
                     f"p95 {length['p95']}  max {length['max']}")
        peak = max(bucket["count"] for bucket in length["histogram"]) or 1
        for bucket in length["histogram"]:
            bar = "#" * math.ceil(30 * bucket["count"] / peak) if bucket["count"] else ""
            lines.append(f"  <= {bucket['le']:>7}  {bucket['count']:>6}  {bar}")
    if report.get("kind") != "prompts":  # a prompt renders no reasoning; its reference's is counted below
        lines.append(f"reasoning    {report['with_reasoning']:.1%} with reasoning in the data, "
                     f"{report['with_reasoning_kept']:.1%} kept in the render (format {report['reasoning_format']}), "
                     f"{report['with_empty_reasoning']:.1%} with an empty think block; {report['multi_turn']} multi-turn")
    lines += [
        f"cleaning     {cleaning['normalized']} normalized, {cleaning['duplicates_exact']} exact and "
        f"{cleaning['duplicates_normalized']} normalized duplicates removed, {cleaning['too_long']} over "
        f"max_length ({cleaning['dropped_overlength']} left out, {cleaning['truncated']} truncated)",
    ]
    if report.get("kind", "sft") == "sft":  # pairs and prompts are not packed
        lines.append(f"per epoch    {epoch['tokens']:,} tokens, {epoch['trained_tokens']:,} trained, "
                     f"{epoch['packed_rows']} packed rows (packing efficiency {epoch['packing_efficiency']:.1%})")
    if "preference" in report:
        pairs = report["preference"]
        lines.append(f"preference   {pairs['pairs']} pairs, {pairs['chosen_tokens']:,} chosen and "
                     f"{pairs['rejected_tokens']:,} rejected tokens, chosen the shorter in {pairs['chosen_shorter']:.1%}")
    if "prompts" in report:
        lines.append(f"prompts      {report['prompts']['prompts']} prompts, "
                     f"{report['prompts']['with_reference']:.1%} with a reference answer, "
                     f"{report['with_reasoning']:.1%} with its reasoning (format {report['reasoning_format']})")
    if "split" in report:
        split = report["split"]
        lines.append(f"split        {split['train']} train / {split['validation']} validation ({split['how']})")
    if "sha256" in report:
        lines.append(f"sha256       {report['sha256']}")
    if report["issues_by_code"]:
        lines.append("issues       " + ", ".join(f"{code} x{n}" for code, n in report["issues_by_code"].items()))
        for issue in report["issues"][:max_issues]:
            where = ", ".join(part for part in (
                f"line {issue['line']}" if issue["line"] is not None else "",
                f"record {issue['record']}" if issue["record"] is not None and issue["record"] != issue["line"] else "",
                issue["field"] or "") if part) or "file"
            lines.append(f"  {issue['severity']:<7} {issue['code']:<22} {where}: {issue['message']}")
        hidden = sum(report["issues_by_code"].values()) - min(max_issues, len(report["issues"]))
        if hidden > 0:
            lines.append(f"  ... and {hidden} more (use --json for all)")
    return "\n".join(lines)


def _length_stats(lengths: list[int], max_length: int) -> dict:
    if not lengths:
        return {"min": 0, "mean": 0, "p50": 0, "p95": 0, "max": 0, "histogram": []}
    ordered = sorted(lengths)
    edges, edge = [], 32
    while edge < max_length:
        edges.append(edge)
        edge *= 2
    edges.append(max_length)
    if ordered[-1] > max_length:
        edges.append(ordered[-1])  # one bucket for everything over max_length
    counts = Counter()
    for value in ordered:
        counts[next(e for e in edges if value <= e)] += 1
    return {
        "min": ordered[0],
        "mean": round(sum(ordered) / len(ordered), 1),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)],
        "max": ordered[-1],
        "histogram": [{"le": e, "count": counts[e]} for e in edges],
    }


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _issue_order(issue) -> tuple:
    return (issue.record or 0, issue.line or 0, CODES[issue.code][0] != "error", issue.code)
