"""A Qwen3-style tokenizer folder, offline: smollm2-135m's tokenizer with a chat template that renders an
assistant turn's `reasoning_content` inside <think> tags as Qwen3's does (for every assistant turn here;
Qwen3's own drops it before the last user message, which the renderer refuses as a rewriting template)."""

import shutil
from pathlib import Path

import pytest

QWEN3_STYLE_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if message.reasoning_content is defined and message.reasoning_content is not none %}"
    "{{- '<think>\\n' + message.reasoning_content.strip('\\n') + '\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{{- message.content.lstrip('\\n') + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def make_qwen3_style(smollm2_dir: Path, folder: Path) -> Path:
    """`folder` holding smollm2's tokenizer and generation config, with the Qwen3-style template."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(smollm2_dir / name, folder / name)
    (folder / "chat_template.jinja").write_text(QWEN3_STYLE_TEMPLATE)
    return folder


@pytest.fixture(scope="session")
def qwen3_style_dir(smollm2_dir, tmp_path_factory) -> Path:
    return make_qwen3_style(smollm2_dir, tmp_path_factory.mktemp("qwen3-style"))
