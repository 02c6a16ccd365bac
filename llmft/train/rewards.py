"""GRPO rewards: the evaluation graders as TRL reward functions, plus optional format and length terms.

    functions, weights = reward_functions(read_spec("config/graders/business_math.yaml"), tokenizer=tokenizer,
                                          eos_ids={tokenizer.eos_token_id}, format=0.5, length_target=200,
                                          length_penalty=0.01)
    GRPOTrainer(..., reward_funcs=functions, args=GRPOConfig(..., reward_weights=weights))

One function per grader, named after it, so TRL logs each as `rewards/NAME/mean`; its weight is the grader's
`weight` (default 1). Each scores a completion exactly as evaluation does (llmft/evaluate/run.py): the
generated ids up to the first EOS decoded as they are, the `<think>` the prompt opened put back in front,
the reasoning split off (split_reasoning) and the answer graded by `grade` against the row's `reference`
and `record` (the data record as JSON text: a dataset column keeps it exactly, where Arrow would fill a
field one record lacks with null); `finished` is "ended with EOS", i.e. not clipped at
max_completion_length. The optional terms:

  format_bonus    1 when the think block is closed and the completion ended with EOS (weight: `format`)
  length_penalty  minus the tokens beyond `length_target` (weight: `length_penalty`; 0 at or under the target)

A function that raises (a record without a field a grader reads, a bug) raises RewardError naming the
reward and the record's line (the row's `line` column); the GRPO run stops on it with status reward_failed
and exit code 5, keeping its last checkpoint (llmft/exit_codes.py).
"""

import json
from collections.abc import Callable, Iterable

from llmft.bases.r1_tokenizer import THINK_OPEN
from llmft.evaluate.graders import GraderSpec, ThinkFormat, grade
from llmft.evaluate.metrics import split_reasoning

FORMAT, LENGTH = "format_bonus", "length_penalty"  # the optional terms' names, as TRL logs them
RewardFunction = Callable[..., list[float]]  # fn(prompts, completions, completion_ids, **columns) -> one per completion


class RewardError(RuntimeError):
    """A reward function failed: which reward, on which record, and why."""

    def __init__(self, reward: str, where: str, error: Exception):
        self.reward, self.where = reward, where
        super().__init__(f"reward {reward!r} failed on {where}: {type(error).__name__}: {error}")


def reward_functions(spec: GraderSpec, *, tokenizer, eos_ids: Iterable[int], format: float = 0.0,
                     length_target: int | None = None, length_penalty: float = 0.0) -> tuple[list[RewardFunction],
                                                                                                 list[float]]:
    """TRL reward functions (one per grader, then the format and length terms when their weight is not 0) and
    their weights, in the same order. `eos_ids`: the token ids that end a generation."""
    eos = frozenset(eos_ids)
    taken = {FORMAT, LENGTH} & set(spec.names)
    if taken:
        raise ValueError(f"grader name {sorted(taken)[0]!r} is the name of a reward term; rename the grader")
    if length_penalty and length_target is None:
        raise ValueError("length_penalty needs length_target: the completion length in tokens that costs nothing")
    functions = [_grader_reward(GraderSpec(graders=(grader,)), tokenizer, eos) for grader in spec.graders]
    weights = [grader.weight for grader in spec.graders]
    if format:
        closed_and_ended = GraderSpec(graders=(ThinkFormat(name=FORMAT, type="think_format", require_reasoning=False),))
        functions.append(_grader_reward(closed_and_ended, tokenizer, eos))
        weights.append(format)
    if length_penalty:
        functions.append(_length_reward(length_target, eos))
        weights.append(length_penalty)
    return functions, weights


def completion_text(tokenizer, prompt: str, ids: list[int], eos: frozenset[int]) -> tuple[str, bool, int]:
    """(the completion as the model's whole turn, whether it ended with EOS, its length in tokens without the EOS),
    as evaluation reads a generation: cut at the first EOS, decoded with special tokens kept, with the `<think>`
    the prompt opened put back in front."""
    end = next((i for i, token in enumerate(ids) if token in eos), None)
    kept = ids if end is None else ids[:end]
    text = tokenizer.decode(kept, skip_special_tokens=False)
    return (THINK_OPEN + "\n" + text if prompt.endswith(THINK_OPEN + "\n") else text), end is not None, len(kept)


def _grader_reward(spec: GraderSpec, tokenizer, eos: frozenset[int]) -> RewardFunction:
    name = spec.names[0]

    def reward(prompts, completions, completion_ids, reference, record, line=None, **_) -> list[float]:
        scores = []
        for i, (prompt, ids) in enumerate(zip(prompts, completion_ids, strict=True)):
            try:
                text, finished, _ = completion_text(tokenizer, prompt, ids, eos)
                reasoning, answer, closed = split_reasoning(text)
                expected = split_reasoning(reference[i])[1] if reference[i] is not None else ""
                scores.append(grade(spec, answer=answer, reasoning=reasoning, finished=finished, closed=closed,
                                    reference=expected, record=json.loads(record[i]))[name])
            except Exception as error:  # noqa: BLE001 - every failure becomes one error naming the reward and record
                raise RewardError(name, _where(line, i), error) from error
        return scores

    reward.__name__ = reward.__qualname__ = name
    return reward


def _length_reward(target: int, eos: frozenset[int]) -> RewardFunction:
    def reward(prompts, completions, completion_ids, **_) -> list[float]:
        lengths = [next((k for k, token in enumerate(ids) if token in eos), len(ids)) for ids in completion_ids]
        return [-float(max(0, length - target)) for length in lengths]

    reward.__name__ = reward.__qualname__ = LENGTH
    return reward


def _where(line, index: int) -> str:
    return f"the record at line {line[index]}" if line is not None else f"completion {index + 1} of the batch"
