"""Plain metric functions for fine-tuned reasoning models (DeepSeek-R1 style generations).

    from llmft.evaluate.metrics import facts, reasoning_stats, score_answers
    score_answers(["<think>\\n2+2 is 4\\n</think>\\n\\n4"], ["4"])  # bleu, rouge_l, exact_match, fact_hit (1.0), count
    facts("Call 0800 555 0134 before 8:00.")  # ["08005550134", "8:00"]
    reasoning_stats(generations, finished)  # shares ending with EOS, closing </think>, empty reasoning; mean lengths

A generation reads `<think>\\n...reasoning...\\n</think>\\n\\nanswer`, possibly followed by EOS.
Answers are scored with the reasoning removed, on both sides. Chinese (and other CJK) text is
scored per character: sacrebleu's "zh" tokenizer for BLEU, and a character tokenizer for
ROUGE-L, because rouge_score's default tokenizer deletes every CJK character and scores 0.

`fact_hit` asks whether the answer carries the reference's facts, where BLEU and ROUGE-L reward
wording: numbers (prices, weights, times, dates, percentages, phone numbers), codes, emails and
URLs, quoted strings, and capitalized names that do not open a sentence (see `facts`).
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


def facts(text: str) -> list[str]:
    """The facts of a reference answer that a right answer should repeat, each once, in compared form
    (NFKC, lowercase, single spaces; numbers without thousands separators; phone numbers without spaces
    or dashes). In order of precedence, each claiming its characters:

    - quoted strings ("...", “...”, 「...」, 『...』): the text inside;
    - codes, emails and URLs: tokens with inner punctuation that hold an @, a digit, a capital or a domain
      (`SHIP-2024`, `help@cobalt.example`, `cobalt.example/track`; not `cut-off`);
    - numbers: dates (`2024-05-01`, `1/5/2024`), times (`8:00`), phone numbers of 7 digits or more
      (`0800 555 0134` -> `08005550134`), percentages (`15%`), plain numbers (`$4.90` -> `4.90`,
      `30 kg` -> `30`, `2,300` -> `2300`);
    - English: capitalized words that do not open a sentence (a word with a digit, or in capitals,
      counts anywhere), less the stopwords; CJK text is not segmented: runs of Latin letters and digits.
    """
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'")
    cjk, found = is_cjk(text), []
    text = _cut(text, _QUOTED, lambda m: [next(g for g in m.groups() if g is not None)], found)
    text = _cut(text, _CODE, lambda m: [m.group()] if _is_code(m.group()) else None, found)
    text = _LIST_MARKER.sub(lambda m: " " * len(m.group()), text)  # "1. Open Settings": the 1 is no fact
    text = _cut(text, _NUMBER, _number_forms, found)
    if cjk:
        text = _cut(text, _LATIN, lambda m: [m.group()], found)
    else:
        text = _cut(text, _NAME, lambda m: None if _opens_sentence(text, m) else [m.group().removesuffix("'s")],
                    found)
    out: list[str] = []
    for fact in map(_canonical, found):
        if fact and fact not in STOPWORDS and fact not in out:
            out.append(fact)
    return out


def fact_share(hypothesis: str, reference: str) -> float | None:
    """Share (0-1) of the reference's facts found in the hypothesis (as whole tokens, case-insensitive), with the
    reasoning removed from both sides; None when the reference has no facts."""
    expected = facts(split_reasoning(reference)[1])
    if not expected:
        return None
    answer = _canonical(split_reasoning(hypothesis)[1])
    return sum(_mentions(answer, fact) for fact in expected) / len(expected)


def mentions(text: str, fact: str) -> bool:
    """`fact` occurs in `text` as a whole token, both in compared form (case, spaces and number forms as in
    `facts`): what the facts grader checks for each fact."""
    return _mentions(_canonical(text), _canonical(fact))


def fact_hit(hypotheses: list[str], references: list[str]) -> float:
    """Mean `fact_share` (0-1) over the pairs whose reference has at least one fact; 0.0 when none has."""
    _check_lengths(hypotheses, references)
    shares = [share for share in map(fact_share, hypotheses, references) if share is not None]
    return _share(sum(shares), len(shares))


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
    """BLEU, ROUGE-L, exact match and fact hit of the answers, with the reasoning removed from both sides."""
    _check_lengths(generations, references, "generations", "references")
    answers = [split_reasoning(text)[1] for text in generations]
    expected = [split_reasoning(text)[1] for text in references]
    return {"bleu": bleu(answers, expected), "rouge_l": rouge_l(answers, expected),
            "exact_match": exact_match(answers, expected), "fact_hit": fact_hit(answers, expected),
            "count": len(answers)}


def perplexity(mean_loss: float) -> float:
    """exp(mean token loss); inf when that overflows a float."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return float("inf")


# Facts (see `facts`), cut from the text in this order: quoted strings, codes, numbers, then names or Latin runs.
_QUOTED = re.compile('"([^"\\n]{1,80})"|\u201c([^\u201d\\n]{1,80})\u201d'
                     '|\u300c([^\u300d\\n]{1,80})\u300d|\u300e([^\u300f\\n]{1,80})\u300f')
_CODE = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]+(?:[@._/:+#?=&~-]+[A-Za-z0-9]+)+")
_DOMAIN = re.compile(r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}(?:[/?#].*)?", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![A-Za-z0-9])(?:(?P<date>\d{4}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/\d{2,4})"
                     r"|(?P<time>\d{1,2}:\d{2}(?::\d{2})?)|(?P<phone>\+?\d{2,}(?:[ -]\d{2,})+)"
                     r"|(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?: ?%)?|\d+(?:\.\d+)?(?: ?%)?))")
_LIST_MARKER = re.compile(r"^(\s*)\d+[.)](?=\s)", re.MULTILINE)
_NAME = re.compile(r"(?<![A-Za-z0-9])[A-Z][A-Za-z0-9]*(?:'[a-z]+)?")
_LATIN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*")
_LINE_START = re.compile("\\s*(?:[-*\u2022>#]+|\\d+[.)])?[\\s\"'\u201c(\\[*_]*")  # indent, list marker, quote
_AFTER_STOP = re.compile("[.!?:;\u3002\uff01\uff1f][\\s\"'\u201c\u201d)\\]*_]*$")
_WORD_CHAR = "0-9a-z\u00df-\u024f"  # digits and (lowercased) Latin letters, accented ones too
PHONE_DIGITS = 7
STOPWORDS = frozenset("""
    i i'm i'll i've i'd me my we our us you your yours he she it its they them their this that these those
    a an the and or but so if then also not no yes to of in on at by for from with as is are was be can will
    do does please hi hello dear thanks thank ok okay note step here there when what how why where which who
""".split())


def _cut(text: str, pattern: re.Pattern, keep, found: list[str]) -> str:
    """Append `keep(match)`'s facts for each match to `found`, and blank the matches it keeps out of the text."""
    def cut(match: re.Match) -> str:
        kept = keep(match)
        if not kept:
            return match.group()
        found.extend(kept)
        return "\0" * len(match.group())
    return pattern.sub(cut, text)


def _is_code(token: str) -> bool:
    has_letter = any(c.isalpha() for c in token)
    return has_letter and ("@" in token or any(c.isdigit() or c.isupper() for c in token)
                           or _DOMAIN.fullmatch(token) is not None)


def _number_forms(match: re.Match) -> list[str]:
    """A matched number as compared; digit groups split by spaces or dashes are one phone number from 7 digits
    on, else separate numbers; dates and times as written."""
    token = match.group()
    if match.lastgroup == "phone":
        if sum(c.isdigit() for c in token) >= PHONE_DIGITS:
            return [re.sub(r"[ -]", "", token)]
        return re.split(r"[ -]", token)
    if match.lastgroup == "number":
        return [token.replace(",", "").replace(" ", "")]
    return [token]


def _opens_sentence(text: str, match: re.Match) -> bool:
    """True for a word at the start of a line (after a list marker) or after .!?:; -- unless it holds a digit
    or is in capitals (SMS, QR, CB482), which are facts anywhere."""
    word = match.group()
    if any(c.isdigit() for c in word) or (len(word) > 1 and word.isupper()):
        return False
    line = text[text.rfind("\n", 0, match.start()) + 1:match.start()]
    return _LINE_START.fullmatch(line) is not None or _AFTER_STOP.search(line) is not None


def _canonical(text: str) -> str:
    """NFKC, lowercase, single spaces, and every number in its compared form (see `_number_forms`)."""
    text = " ".join(unicodedata.normalize("NFKC", text).replace("\u2019", "'").lower().split())
    return _NUMBER.sub(lambda m: (forms[0] if len(forms := _number_forms(m)) == 1 else m.group()), text)


def _mentions(text: str, fact: str) -> bool:
    """`fact` occurs in `text` as a whole token: no letter or digit touches it, nor a decimal part (30 is not in 30.5)."""
    return re.search(rf"(?<![{_WORD_CHAR}])(?<!\d\.){re.escape(fact)}(?![{_WORD_CHAR}])(?!\.\d)", text) is not None


def _normalize(text: str) -> str:
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    return text.rstrip(_TRAILING)


def _share(total: float, count: int) -> float:
    return total / count if count else 0.0


def _check_lengths(first: list, second: list, first_name: str = "hypotheses", second_name: str = "references") -> None:
    if len(first) != len(second):
        raise ValueError(f"{len(first)} {first_name} but {len(second)} {second_name}: "
                         "pass exactly one per item, in the same order")
