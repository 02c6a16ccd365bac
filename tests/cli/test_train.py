"""`llmft train` as a user runs it: output, exit codes, no tracebacks."""

from llmft import exit_codes
from llmft.cli import main


def test_train_without_data_is_a_usage_error(tmp_path, capsys):
    assert main(["train", "--set", f"output.output_dir={tmp_path}"]) == exit_codes.USAGE
    assert "data.train_file is required" in capsys.readouterr().err


def test_train_with_an_unknown_key_names_the_closest(capsys):
    assert main(["train", "--set", "training.learnig_rate=1"]) == exit_codes.USAGE
    assert "did you mean 'learning_rate'" in capsys.readouterr().err
