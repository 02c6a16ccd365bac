"""data.reasoning_format on every kind of model: R1 (tiny-r1), ChatML without a reasoning field (smollm2-135m)
and a Qwen3-style template that renders reasoning_content. Reasoning is kept unless drop is asked for, and then
validate warns; think_mode treats a turn without reasoning the same way in every format."""

import json

import pytest
from transformers import AutoTokenizer

from llmft.config import ConfigError
from llmft.data.config import DataConfig
from llmft.data.normalize import Example, Message
from llmft.data.preview import reasoning_note
from llmft.data.render import EMPTY_THINK, render, resolve_format, template_renders_reasoning
from llmft.data.report import build_report, format_report
from llmft.data.tokenize import tokenize_rendered
from llmft.data.validate import check_file


@pytest.fixture(scope="module")
def chatml(smollm2_dir):
    return AutoTokenizer.from_pretrained(smollm2_dir)


@pytest.fixture(scope="module")
def qwen3_style(qwen3_style_dir):
    return AutoTokenizer.from_pretrained(qwen3_style_dir)


def conversation(reasoning: str | None = "2 plus 2 makes 4") -> Example:
    return Example([Message("user", "2+2?"), Message("assistant", "4", reasoning=reasoning)])


def spans(rendered) -> list[tuple[str, str, bool]]:
    return [(s.text, s.kind, s.trained) for s in rendered.segments]


def test_auto_picks_the_template_field_r1_or_inline_tags(tokenizer, chatml, qwen3_style):
    assert resolve_format(tokenizer) == "r1"
    assert not template_renders_reasoning(chatml) and resolve_format(chatml) == "think_tags"
    assert resolve_format(chatml, has_reasoning=False) == "template"  # data without reasoning renders as before
    assert template_renders_reasoning(qwen3_style) and resolve_format(qwen3_style) == "template"
    assert resolve_format(qwen3_style, requested="drop") == resolve_format(tokenizer, requested="drop") == "drop"
    with pytest.raises(ValueError, match="does not render reasoning_content"):
        resolve_format(chatml, requested="template")


def test_chatml_keeps_reasoning_inline_before_the_answer_all_trained(chatml):
    rendered = render(conversation(), r1=False, tokenizer=chatml, reasoning_format="think_tags")
    assert spans(rendered)[1:] == [("<think>\n2 plus 2 makes 4\n</think>\n\n", "reasoning", True),
                                   ("4<|im_end|>\n", "answer", True)]
    tokens = tokenize_rendered(rendered, chatml)
    assert tokens.reasoning_tokens > 0
    trained = chatml.decode([i for i, label in zip(tokens.input_ids, tokens.labels) if label != -100])
    assert trained == "<think>\n2 plus 2 makes 4\n</think>\n\n4<|im_end|>\n"


def test_qwen3_style_template_renders_its_own_field(qwen3_style):
    rendered = render(conversation(), r1=False, tokenizer=qwen3_style, reasoning_format="template")
    assert spans(rendered) == [("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", "user", False),
                               ("<think>\n2 plus 2 makes 4\n</think>\n\n", "reasoning", True),
                               ("4<|im_end|>\n", "answer", True)]


@pytest.mark.parametrize("think_mode, block", [("mask", [(EMPTY_THINK, "turn", False)]),
                                               ("train", [(EMPTY_THINK, "turn", True)]), ("omit", [])])
def test_think_mode_is_the_same_in_every_format(tokenizer, chatml, qwen3_style, think_mode, block):
    no_reasoning = conversation(None)
    r1 = spans(render(no_reasoning, r1=True, think_mode=think_mode))
    inline = spans(render(no_reasoning, r1=False, tokenizer=chatml, think_mode=think_mode, reasoning_format="think_tags"))
    field = spans(render(no_reasoning, r1=False, tokenizer=qwen3_style, think_mode=think_mode,
                         reasoning_format="template"))
    for rendered in (r1, inline, field):
        blocks = [span for span in rendered if span[1] == "turn" and "think" in span[0]]
        assert blocks == block, rendered


def test_drop_leaves_reasoning_out_everywhere(tokenizer, chatml, qwen3_style):
    for tok, r1 in ((tokenizer, True), (chatml, False), (qwen3_style, False)):
        rendered = render(conversation(), r1=r1, tokenizer=tok, think_mode="omit", reasoning_format="drop")
        assert "2 plus 2" not in rendered.text and tokenize_rendered(rendered, tok).reasoning_tokens == 0


def test_r1_render_is_unchanged_by_the_format(tokenizer):
    example = conversation()
    assert render(example, r1=True, reasoning_format="r1") == render(example, r1=True)
    assert "<think>\n2 plus 2 makes 4\n</think>\n\n4" in render(example, r1=True).text


def write(tmp_path, records) -> object:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


RECORDS = [{"messages": [{"role": "user", "content": f"q{i}"},
                         {"role": "assistant", "content": f"a{i}", **({"reasoning_content": f"why {i}"} if i < 3 else {})}]}
           for i in range(8)]


def test_validate_reports_kept_reasoning_and_warns_when_dropped(tmp_path, chatml):
    path = write(tmp_path, RECORDS)
    kept = build_report(check_file(path, tokenizer=chatml, config=DataConfig()), source="d", model="m", max_length=2048)
    assert (kept["reasoning_format"], kept["with_reasoning"], kept["with_reasoning_kept"]) == ("think_tags", 0.375, 0.375)
    assert "reasoning_dropped" not in kept["issues_by_code"] and kept["tokens"]["reasoning"] > 0

    checked = check_file(path, tokenizer=chatml, config=DataConfig(reasoning_format="drop"))
    dropped = build_report(checked, source="d", model="m", max_length=2048)
    assert (dropped["with_reasoning"], dropped["with_reasoning_kept"], dropped["tokens"]["reasoning"]) == (0.375, 0.0, 0)
    assert dropped["issues_by_code"] == {"reasoning_dropped": 1} and dropped["errors"] == 0
    [issue] = dropped["issues"]
    assert issue["severity"] == "warning" and issue["message"].startswith("3 of 8 examples")
    assert "37.5% with reasoning in the data, 0.0% kept in the render (format drop)" in format_report(dropped)
    example, tokens = checked.examples[0], checked.tokenized[0]
    assert reasoning_note(example, tokens, "drop") == "reasoning LEFT OUT (reasoning_format drop)"


def test_preview_note_says_how_reasoning_is_kept(tmp_path, qwen3_style):
    checked = check_file(write(tmp_path, RECORDS), tokenizer=qwen3_style, config=DataConfig())
    assert checked.reasoning_format == "template"
    notes = [reasoning_note(e, t, checked.reasoning_format) for e, t in zip(checked.examples, checked.tokenized)]
    assert notes[3:] == [""] * 5
    assert all(note.startswith("reasoning kept (template, ") for note in notes[:3])


def test_asking_for_the_template_field_on_a_template_without_one_is_a_config_error(tmp_path, chatml):
    with pytest.raises(ConfigError, match="data.reasoning_format"):
        check_file(write(tmp_path, RECORDS), tokenizer=chatml, config=DataConfig(reasoning_format="template"))
