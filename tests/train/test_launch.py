"""The launcher's exit code: torchrun's, unless the ranks stopped as told (torchrun calls that a failure)."""

from llmft import exit_codes
from llmft.train.launch import Launched
from llmft.train.summary import DataSummary, RunSummary


def summary(status: str) -> RunSummary:
    return RunSummary(status=status, steps=2, epochs=0.5, first_train_loss=3.0, final_train_loss=2.9,
                      final_eval_loss=None, best_eval_loss=None, best_checkpoint=None, stopped_by=None,
                      tokens_seen=100, train_runtime_s=1.0, tokens_per_second=100.0, processes=2, wall_time_s=2.0,
                      peak_rss_gb=1.0, final_dir=None, tokenizer_sha256="ab" * 32, renderer_version="2",
                      data=DataSummary(sha256="cd" * 32, sources=[], folder="/p", train_examples=4,
                                       validation_examples=0),
                      config={}, llmft_version="0.1.0", torch_version="2.13.0")


def test_exit_code_of_a_launch():
    assert Launched(0, summary("succeeded")).exit_code == exit_codes.OK
    assert Launched(1, summary("stopped")).exit_code == exit_codes.STOPPED
    assert Launched(1, summary("nan_loss")).exit_code == exit_codes.NAN_LOSS
    assert Launched(1, None).exit_code == 1  # a rank failed before rank 0 wrote a summary: torchrun's code
    assert Launched(-15, None).exit_code == -15
