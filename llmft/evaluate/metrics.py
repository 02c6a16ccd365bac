"""Plain metric functions for fine-tuned reasoning models (DeepSeek-R1 style generations).

    from llmft.evaluate.metrics import reasoning_stats, score_answers
    score_answers(["<think>\\n2+2 is 4\\n</think>\\n\\n4"], ["4"])  # bleu, rouge_l, exact_match (1.0), count
    reasoning_stats(generations, finished)  # shares ending with EOS, closing </think>, empty reasoning; mean lengths

A generation reads `<think>\\n...reasoning...\\n</think>\\n\\nanswer`, possibly followed by EOS.
Answers are scored with the reasoning removed, on both sides. Chinese (and other CJK) text is
scored per character: sacrebleu's "zh" tokenizer for BLEU, and a character tokenizer for
ROUGE-L, because rouge_score's default tokenizer deletes every CJK character and scores 0.
"""

import math
import re
import unicodedata

import sacrebleu
from rouge_score import rouge_scorer

from llmft.bases.r1_tokenizer import EOS, THINK_CLOSE, THINK_OPEN

CJK_SHARE = 0.3

# Han (basic, extension A, compatibility, extensions B-F and the compatibility supplement),
# Hiragana, Katakana (with the phonetic extension and half-width forms), Hangul (jamo, syllables).
_CJK_CLASS = ("\u1100-\u11ff\u3040-\u309f\u30a0-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
              "\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f")
_CJK = re.compile(f"[{_CJK_CLASS}]")
_CJK_TOKEN = re.compile(f"[{_CJK_CLASS}]|[a-z0-9]+")
_TRAILING = ".。!！?？ "


def split_reasoning(text: str) -> tuple[str, str, bool]:
    """(reasoning, answer, closed), both parts stripped; a trailing EOS token is dropped first.

    `</think>` present: reasoning is what comes before it (less a leading `<think>`), answer what
    comes after, closed. `<think>` without `</think>`: all after `<think>` is reasoning, no answer,
    not closed. Neither tag: no reasoning block at all, the whole text is the answer, and that
    counts as closed (nothing was left open).
    """
    text = text.strip().removesuffix(EOS)
    if THINK_CLOSE in text:
        reasoning, _, answer = text.partition(THINK_CLOSE)
        return reasoning.strip().removeprefix(THINK_OPEN).strip(), answer.strip(), True
    if THINK_OPEN in text:
        return text.partition(THINK_OPEN)[2].strip(), "", False
    return "", text.strip(), True


def is_cjk(text: str) -> bool:
    """True when at least 30% of the non-whitespace characters are Han, Hiragana, Katakana or Hangul.

    Punctuation, digits and Latin words count in the denominator, so a Chinese sentence quoting a
    few English terms is still CJK, while English text quoting one Chinese name is not. Empty: False.
    """
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return False
    return sum(1 for c in chars if _CJK.match(c)) / len(chars) >= CJK_SHARE


class CJKTokenizer:
    """rouge_score tokenizer: each CJK character is a token, runs of a-z/0-9 (after NFKC and lowercase) are words;
    punctuation and whitespace are dropped."""

    def tokenize(self, text: str) -> list[str]:
        return _CJK_TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


_ROUGE = rouge_scorer.RougeScorer(["rougeL"])
_ROUGE_CJK = rouge_scorer.RougeScorer(["rougeL"], tokenizer=CJKTokenizer())


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """Corpus BLEU (0-100) with one reference per hypothesis; "zh" tokenization when the references are CJK."""
    _check_lengths(hypotheses, references)
    if not hypotheses:
        return 0.0
    tokenize = "zh" if is_cjk("\n".join(references)) else "13a"
    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize).score


def rouge_l(hypotheses: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F1 (0-1); pairs where either side is CJK are tokenized per character."""
    _check_lengths(hypotheses, references)
    if not hypotheses:
        return 0.0
    scores = []
    for hypothesis, reference in zip(hypotheses, references):
        scorer = _ROUGE_CJK if is_cjk(reference) or is_cjk(hypothesis) else _ROUGE
        scores.append(scorer.score(reference, hypothesis)["rougeL"].fmeasure)
    return sum(scores) / len(scores)


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    """Share (0-1) of pairs equal after NFKC, lowercase, collapsed whitespace and no trailing .。!?."""
    _check_lengths(hypotheses, references)
    if not hypotheses:
        return 0.0
    return sum(_normalize(h) == _normalize(r) for h, r in zip(hypotheses, references)) / len(hypotheses)


def reasoning_stats(generations: list[str], finished: list[bool]) -> dict:
    """How the generations behave as reasoning output; `finished[i]`: generation i ended with EOS within budget."""
    _check_lengths(generations, finished, "generations", "finished")
    n = len(generations)
    parts = [split_reasoning(text) for text in generations]
    return {
        "ended_with_eos": _share(sum(map(bool, finished)), n),
        "closed_think": _share(sum(closed for _, _, closed in parts), n),
        "empty_reasoning": _share(sum(not reasoning for reasoning, _, _ in parts), n),
        "mean_reasoning_chars": _share(sum(len(reasoning) for reasoning, _, _ in parts), n),
        "mean_answer_chars": _share(sum(len(answer) for _, answer, _ in parts), n),
        "count": n,
    }


def score_answers(generations: list[str], references: list[str]) -> dict:
    """BLEU, ROUGE-L and exact match of the answers, with the reasoning removed from both sides."""
    _check_lengths(generations, references, "generations", "references")
    answers = [split_reasoning(text)[1] for text in generations]
    expected = [split_reasoning(text)[1] for text in references]
    return {"bleu": bleu(answers, expected), "rouge_l": rouge_l(answers, expected),
            "exact_match": exact_match(answers, expected), "count": len(answers)}


def perplexity(mean_loss: float) -> float:
    """exp(mean token loss); inf when that overflows a float."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return float("inf")


def _normalize(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return text.rstrip(_TRAILING)


def _share(total: float, count: int) -> float:
    return total / count if count else 0.0


def _check_lengths(first: list, second: list, first_name: str = "hypotheses", second_name: str = "references") -> None:
    if len(first) != len(second):
        raise ValueError(f"{len(first)} {first_name} but {len(second)} {second_name}: "
                         "pass exactly one per item, in the same order")
