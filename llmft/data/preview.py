"""Show what the model will learn: rendered examples with the trained spans marked.

    llmft data preview FILE --model tiny-r1 [-n 3]

The marks come from the labels of the real token ids (decoded run by run), so the preview is
exactly the training signal, not a re-rendering of it. Preference pairs and RL prompts show the
rows their trainers get instead: the prompt as served, then chosen and rejected, or the reference.
"""

from llmft.data.normalize import Example
from llmft.data.tokenize import IGNORE, Tokenized

GREEN, RESET = "\033[32m", "\033[0m"
OPEN, CLOSE = "⟦", "⟧"


def format_example(tokens: Tokenized, tokenizer, *, color: bool) -> str:
    """The example's text, trained runs in green (color) or between ⟦ and ⟧ (plain)."""
    pieces = []
    for trained, ids in runs(tokens):
        text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if trained:
            text = f"{GREEN}{text}{RESET}" if color else f"{OPEN}{text}{CLOSE}"
        pieces.append(text)
    return "".join(pieces)


def reasoning_note(example: Example, tokens: Tokenized, reasoning_format: str | None) -> str:
    """What became of the example's reasoning: kept (how, how many tokens) or left out; "" when it has none."""
    if not example.has_reasoning:
        return ""
    if tokens.reasoning_tokens:
        return f"reasoning kept ({reasoning_format}, {tokens.reasoning_tokens} tokens)"
    return f"reasoning LEFT OUT (reasoning_format {reasoning_format})"


def runs(tokens: Tokenized):
    """(trained, token ids) for each run of tokens with the same label state."""
    run, state = [], None
    for token_id, label in zip(tokens.input_ids, tokens.labels):
        trained = label != IGNORE
        if run and trained != state:
            yield state, run
            run = []
        run.append(token_id)
        state = trained
    if run:
        yield state, run


def format_rows(kind: str, checked, tokenizer, *, think_mode: str, start: int = 1, n: int = 3,
                color: bool = False) -> str:
    """Preference pairs (the prompt, then chosen and rejected, each trained: green or between ⟦ and ⟧) or RL prompts
    (the prompt, then the reference answer) as their trainers get them, from record `start` on, at most `n`."""
    from llmft.data.preference import preference_rows
    from llmft.data.rl_prompts import prompt_rows

    number = (lambda e: e.number) if kind == "prompts" else (lambda e: e.record)  # noqa: E731
    examples = [e for e in checked.examples if number(e) >= start][:n]
    make = prompt_rows if kind == "prompts" else preference_rows
    rows = make(tokenizer, examples, reasoning_format=checked.reasoning_format, think_mode=think_mode)
    trained = (lambda text: f"{GREEN}{text}{RESET}") if color else (lambda text: f"{OPEN}{text}{CLOSE}")  # noqa: E731
    parts = []
    for example, row in zip(examples, rows):
        where = f"line {example.line}" if example.line else f"record {number(example)}"
        if kind == "prompts":
            parts.append(f"── {where} (format {checked.reasoning_format}) ──")
            parts += [f"prompt:\n{row['prompt']}", f"reference: {row['reference'] if row['reference'] is not None else '(none)'}"]
        else:
            parts.append(f"── {where} (format {checked.reasoning_format}; {'green' if color else '⟦…⟧'} = trained) ──")
            parts += [f"prompt:\n{row['prompt']}", f"chosen:\n{trained(row['chosen'])}",
                      f"rejected:\n{trained(row['rejected'])}"]
    return "\n".join(parts)
