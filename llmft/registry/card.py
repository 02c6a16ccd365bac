"""The model card: `README.md` in a version's artifact folder, generated from what the registry knows."""

import json


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
                  f"(`{evaluation.get('dataset', '?')}`), next to the base model:", "",
                  "| metric | base | this version |", "|---|---|---|"]
        for key in sorted(set(evaluation.get("candidate", {})) | set(evaluation.get("base", {}))):
            lines.append(f"| {key} | {_fmt(evaluation.get('base', {}).get(key))} | "
                         f"{_fmt(evaluation.get('candidate', {}).get(key))} |")
        for sample in evaluation.get("samples", [])[:3]:
            lines += ["", f"**Prompt**: {sample['prompt'][:300]}", "",
                      f"- base: {sample['base'][:300]!r}", f"- this version: {sample['candidate'][:300]!r}"]
    lines += ["", "## Use", "", "```bash",
              f'curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8000/api/v1/models/{name}/versions/{version}',
              "```", ""]
    return "\n".join(lines)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return "—" if value is None else str(value)
