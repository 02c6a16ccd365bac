"""The model card: `README.md` in a version's artifact folder, generated from what the registry knows."""

import json

SAMPLES = 3  # examples of the evaluation shown, question, reference and both answers


def model_card(*, name: str, version: int, kind: str, lineage: dict, metrics: dict, evaluation: dict | None) -> str:
    base = lineage.get("base_model", "?")
    lines = [f"# {name}:{version}", "",
             f"A {'LoRA adapter' if kind == 'adapter' else 'fully fine-tuned model'} on `{base}`, "
             f"fine-tuned by llmft job `{lineage.get('job_id')}`.", "", "## Lineage", ""]
    for key in ("job_id", "exported_from", "base_model", "base_revision", "method", "datasets", "data_sha256",
                "tokenizer_sha256", "renderer_version", "think_mode", "llmft_version", "torch_version"):
        if lineage.get(key) is not None:
            value = lineage[key]
            lines.append(f"- **{key}**: `{json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value}`")
    lines += ["", "## Training metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in sorted(metrics.items())]
    if evaluation:
        lines += ["", "## Evaluation", "", f"On {evaluation.get('examples', '?')} validation examples "
                  f"(`{evaluation.get('dataset', '?')}`, {evaluation.get('generated', '?')} answered), next to the base model:", "",
                  "| metric | base | this version |", "|---|---|---|"]
        for key in sorted(set(evaluation.get("candidate", {})) | set(evaluation.get("base", {}))):
            lines.append(f"| {key} | {_fmt(evaluation.get('base', {}).get(key))} | "
                         f"{_fmt(evaluation.get('candidate', {}).get(key))} |")
        for sample in evaluation.get("samples", [])[:SAMPLES]:
            lines += ["", f"**Question**: {sample['prompt'][:300]}", "",
                      f"- reference: {sample['reference'][:300]!r}",
                      f"- base: {_answer(sample['base'])!r}", f"- this version: {_answer(sample['candidate'])!r}"]
    lines += ["", "## Use", "", "```bash",
              f'curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8000/api/v1/models/{name}/versions/{version}',
              "```", ""]
    return "\n".join(lines)


def _answer(side: dict | str) -> str:
    """A side's answer in a sample: {"answer": ...}; a report stored before answers were scored one by one held
    the whole generation as a string (an export copies its source's report)."""
    return (side["answer"] if isinstance(side, dict) else side)[:300]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return "—" if value is None else str(value)
