"""Metrics: BLEU and ROUGE-L match the reference libraries (and score Chinese per character),
exact-match normalization, the facts of an answer and the fact hit, splitting the reasoning block,
reasoning stats and answer scoring."""

import math

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from llmft.evaluate.metrics import (
    CJKTokenizer,
    bleu,
    exact_match,
    fact_hit,
    fact_share,
    facts,
    is_cjk,
    perplexity,
    reasoning_stats,
    rouge_l,
    score_answers,
    split_reasoning,
)

EN_HYPS = ["the cat sat on the mat", "a quick brown fox jumps over the dog", "hello world"]
EN_REFS = ["the cat is sitting on the mat", "the quick brown fox jumps over the lazy dog", "hello there world"]
ZH_HYPS = ["请问如何开通创业板交易权限", "今天天气很好，我们去公园散步吧。"]
ZH_REFS = ["如何开通创业板权限", "今天天气不错，我们去公园走走吧。"]
EOS = "<｜end▁of▁sentence｜>"


def test_bleu_equals_sacrebleu_on_english():
    expected = sacrebleu.corpus_bleu(EN_HYPS, [EN_REFS], tokenize="13a").score
    assert bleu(EN_HYPS, EN_REFS) == expected
    assert 0 < expected < 100


def test_bleu_uses_zh_tokenizer_on_chinese():
    expected = sacrebleu.corpus_bleu(ZH_HYPS, [ZH_REFS], tokenize="zh").score
    assert bleu(ZH_HYPS, ZH_REFS) == expected
    assert expected > 0
    # 13a keeps each unspaced Chinese sentence as one token: no n-gram overlap at all.
    assert sacrebleu.corpus_bleu(ZH_HYPS, [ZH_REFS], tokenize="13a").score == 0.0


def test_bleu_identical_is_100_and_empty_is_0():
    assert bleu(EN_REFS, EN_REFS) == pytest.approx(100.0)
    assert bleu([], []) == 0.0


def test_rouge_l_equals_rouge_score_default_on_english():
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    expected = sum(scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(EN_HYPS, EN_REFS)) / len(EN_HYPS)
    assert rouge_l(EN_HYPS, EN_REFS) == expected
    assert 0 < expected < 1


def test_rouge_l_scores_chinese_per_character():
    hyp, ref = "请问如何开通创业板交易权限", "如何开通创业板权限"
    # The hypothesis has 13 characters, the reference 9; the whole reference 如何开通创业板 + 权限 is a
    # subsequence of the hypothesis, so LCS = 9: precision 9/13, recall 9/9 = 1,
    # F1 = 2 * (9/13) * 1 / (9/13 + 1) = (18/13) / (22/13) = 18/22 = 9/11.
    assert rouge_l([hyp], [ref]) == pytest.approx(9 / 11)
    # Why the custom tokenizer: rouge_score's default tokenizer deletes CJK characters, scoring 0.
    assert rouge_scorer.RougeScorer(["rougeL"]).score(ref, hyp)["rougeL"].fmeasure == 0


def test_cjk_tokenizer_splits_characters_and_keeps_latin_words():
    assert CJKTokenizer().tokenize("用 Python3 写，ＨＴＴＰ服务！") == ["用", "python3", "写", "http", "服", "务"]


def test_is_cjk_threshold():
    assert is_cjk("如何开通创业板权限")
    assert is_cjk("如何用Python写一个HTTP服务")  # 9 CJK of 19 characters
    assert is_cjk("こんにちは") and is_cjk("안녕하세요")
    assert not is_cjk("The capital of China is 北京.")  # 2 CJK of 22 non-space characters
    assert not is_cjk("")
    assert not is_cjk("   ")


@pytest.mark.parametrize("hyp, ref", [
    ("Paris.", "paris"),
    ("  The   answer\nis 42 ", "the answer is 42"),
    ("北京。", "北京"),
    ("对！", "对"),
    ("ＡＢＣ？", "abc"),  # NFKC folds full-width letters and the full-width question mark
    ("Yes ?!", "yes"),
])
def test_exact_match_normalization_equal(hyp, ref):
    assert exact_match([hyp], [ref]) == 1.0


def test_exact_match_share():
    assert exact_match(["paris", "london", "42"], ["Paris", "Berlin", "42."]) == pytest.approx(2 / 3)
    assert exact_match(["4 2"], ["42"]) == 0.0
    assert exact_match([], []) == 0.0


@pytest.mark.parametrize("text, expected", [
    ("It costs $4.90 for up to 30 kg.", ["4.90", "30"]),
    ("Call 0800 555 0134 or 0800-555-0135 before 8:00.", ["08005550134", "08005550135", "8:00"]),
    ("Save 15 % until 2024-05-01 on 2,300 items, 10-20 at a time.", ["15%", "2024-05-01", "2300", "10", "20"]),
    ("Email help@cobalt.example with SHIP-2024 or see cobalt.example/track; not a cut-off.",
     ["help@cobalt.example", "ship-2024", "cobalt.example/track"]),
    ('Tap "Forgot password" in the Cobalt app. The Blue Locker opens.', ["forgot password", "cobalt", "blue", "locker"]),
    ("I think You should ask. Yes, the SMS works with CB4821930576.", ["sms", "cb4821930576"]),
    ("1. Open Settings\n2. Tap Save\n- Cobalt's Plus", ["settings", "save", "plus"]),
    ("按T+1规则，10月8日9:00后可转出，ETF另计，请拨打0800 555 0134。", ["t+1", "10", "8", "9:00", "08005550134", "etf"]),
    ("点击「忘记密码」即可。", ["忘记密码"]),
    ("the answer is yes.", []),
    ("", []),
])
def test_facts(text, expected):
    assert facts(text) == expected


def test_fact_share_ignores_case_and_number_format_but_not_other_numbers():
    reference = "Call 0800 555 0134 before 8:00. A Small parcel costs $4.90."  # 08005550134, 8:00, 4.90, small
    assert fact_share("call 0800-555-0134 by 8:00; SMALL parcels are 4.90 dollars", reference) == 1.0
    # 4.9 is not written 4.90, 18:00 is not 8:00: the phone number and "small" remain
    assert fact_share("Small ones cost 4.9; call 08005550134 at 18:00", reference) == 0.5
    assert fact_share("Drop it at one of our 2300 cobalt points", "Drop it at one of our 2,300 Cobalt Points.") == 1.0
    assert fact_share("the limit is 30.5 kg, or 300", "The limit is 30 kg.") == 0.0
    assert fact_share("请在10月8日9:00后拨打0800-555-0134", "按T+1规则，10月8日9:00后可转出，请拨打0800 555 0134。") == 0.8
    assert fact_share("anything", "Hello!") is None


def test_fact_hit_averages_over_references_with_facts_with_the_reasoning_removed():
    generations = ["<think>\nmaybe 30 kg\n</think>\n\nUp to 20 kg.", "<think>\n20\n</think>\n\nThe limit: 30 kg.",
                   "Hello there."]
    references = ["Up to 30 kg.", "<think>\nweights\n</think>\n\nThe limit is 30 kg.", "Hello!"]
    assert fact_hit(generations, references) == 0.5  # 0 (the 30 is in the reasoning) and 1; "Hello!" has no facts
    assert fact_hit(["hi"], ["hello"]) == 0.0
    assert fact_hit([], []) == 0.0


@pytest.mark.parametrize("text, expected", [
    ("<think>\nadd them\n</think>\n\n4", ("add them", "4", True)),
    ("add them\n</think>\n\n4", ("add them", "4", True)),  # the prompt opened the block
    ("\n\n<think>\n\nstep 1\nstep 2\n\n</think>\n\nThe answer is 4.", ("step 1\nstep 2", "The answer is 4.", True)),
    ("<think>\n</think>\n\n4", ("", "4", True)),
    ("<think>\nstill thinking, out of tokens", ("still thinking, out of tokens", "", False)),
    ("just an answer", ("", "just an answer", True)),
    (f"<think>\nx\n</think>\n\n4{EOS}", ("x", "4", True)),
])
def test_split_reasoning(text, expected):
    assert split_reasoning(text) == expected


def test_reasoning_stats():
    generations = [
        "<think>\nabcd\n</think>\n\nyes",  # reasoning 4 chars, answer 3
        "<think>\nabcdefgh",               # unclosed: reasoning 8, answer 0
        "<think>\n</think>\n\nno",         # empty reasoning, answer 2
        "plain",                           # no block: closed, empty reasoning, answer 5
    ]
    stats = reasoning_stats(generations, [True, False, True, True])
    assert stats == {"ended_with_eos": 0.75, "closed_think": 0.75, "empty_reasoning": 0.5,
                     "mean_reasoning_chars": 3.0, "mean_answer_chars": 2.5, "count": 4}


def test_reasoning_stats_empty():
    assert reasoning_stats([], []) == {"ended_with_eos": 0.0, "closed_think": 0.0, "empty_reasoning": 0.0,
                                       "mean_reasoning_chars": 0.0, "mean_answer_chars": 0.0, "count": 0}


def test_score_answers_strips_reasoning_from_both_sides():
    generations = ["<think>\nI think it is 2+2, which is four.\n</think>\n\nThe answer is 4."]
    references = ["<think>\nadding two and two\n</think>\n\nThe answer is 4."]
    scores = score_answers(generations, references)
    assert scores["exact_match"] == 1.0
    assert scores["bleu"] == pytest.approx(100.0)
    assert scores["rouge_l"] == pytest.approx(1.0)
    assert scores["fact_hit"] == 1.0  # the fact "4"; the reasoning's 2+2 is not asked for
    assert scores["count"] == 1


def test_score_answers_unclosed_reasoning_has_no_answer():
    scores = score_answers(["<think>\nThe answer is 4."], ["The answer is 4."])
    assert scores["exact_match"] == 0.0
    assert scores["rouge_l"] == 0.0


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="2 generations but 1 references"):
        score_answers(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        bleu(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        fact_hit(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="1 generations but 0 finished"):
        reasoning_stats(["a"], [])


def test_perplexity():
    assert perplexity(0.0) == 1.0
    assert perplexity(math.log(12.5)) == pytest.approx(12.5)
    assert perplexity(1e6) == float("inf")
