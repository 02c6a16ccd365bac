"""The model card: the evaluation's metrics, then three of its examples (question, reference, both answers)."""

from llmft.registry.card import model_card

LINEAGE = {"base_model": "tiny-r1", "job_id": "job-0123456789abcdef", "method": "lora"}


def card(evaluation: dict) -> str:
    return model_card(name="bot", version=2, kind="adapter", lineage=LINEAGE, metrics={"train_loss": 1.25},
                      evaluation=evaluation)


def side(answer: str, fact_hit: float | None) -> dict:
    return {"answer": answer, "ended_with_eos": True, "rouge_l": 0.5, "fact_hit": fact_hit}


def test_the_card_shows_the_metrics_and_three_examples_with_the_reference_and_both_answers():
    samples = [{"prompt": f"Question {i}?", "reference": f"Answer {i}.", "base": side(f"base {i}", 0.0),
                "candidate": side(f"tuned {i}", 1.0)} for i in range(5)]
    text = card({"examples": 23, "generated": 5, "dataset": "faq.jsonl", "base": {"rouge_l": 0.125, "fact_hit": 0.0},
                 "candidate": {"rouge_l": 0.625, "fact_hit": 0.75}, "samples": samples})
    assert "(`faq.jsonl`, 5 answered)" in text
    assert "| fact_hit | 0 | 0.75 |" in text and "| rouge_l | 0.125 | 0.625 |" in text
    assert "**Question**: Question 2?" in text and "Question 3?" not in text
    assert "- reference: 'Answer 0.'\n- base: 'base 0'\n- this version: 'tuned 0'" in text


def test_a_report_stored_before_shows_its_whole_generations():
    samples = [{"prompt": "Q?", "reference": "A.", "base": "<think>\nx", "candidate": "<think>\ny\n</think>\n\nA."}]
    text = card({"examples": 3, "dataset": "faq.jsonl", "base": {}, "candidate": {}, "samples": samples})
    assert "- base: '<think>\\nx'\n- this version: '<think>\\ny\\n</think>\\n\\nA.'" in text


def test_no_evaluation_no_section():
    assert "## Evaluation" not in card(None) and "## Use" in card(None)
