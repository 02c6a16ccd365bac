"""LLMFT_HOME has one source: a `.env` value reaches the service settings and the code that only asks for the
state folder (the prepared-data cache, the tiny base model) alike. And the settings that bound a job's evaluation."""

import pytest

from llmft.config import ConfigError
from llmft.data.cache import cache_dir
from llmft.settings import llmft_home, load_settings


def test_a_dotenv_llmft_home_is_seen_by_the_settings_and_by_llmft_home(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("LLMFT_HOME=./state-from-dotenv\nHF_TOKEN=of-another-program\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMFT_HOME", raising=False)
    expected = tmp_path / "state-from-dotenv"
    assert llmft_home() == expected
    assert cache_dir() == expected / "cache" / "prepared"
    (tmp_path / ".env").write_text("LLMFT_HOME=./state-from-dotenv\n")
    assert load_settings().llmft_home == expected


def test_the_environment_wins_over_dotenv_for_both(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("LLMFT_HOME=./state-from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMFT_HOME", str(tmp_path / "from-env"))
    assert llmft_home() == load_settings().llmft_home == tmp_path / "from-env"


def test_the_evaluation_a_job_runs_is_bounded_by_two_settings(monkeypatch):
    monkeypatch.delenv("JOB_EVAL_MAX_NEW_TOKENS", raising=False)  # tests/conftest.py lowers it for the tiny model
    settings = load_settings()
    assert (settings.job_eval_max_samples, settings.job_eval_max_new_tokens) == (200, "auto")
    for wrong in ("0", "-5", "lots", "1.5"):
        monkeypatch.setenv("JOB_EVAL_MAX_NEW_TOKENS", wrong)
        with pytest.raises(ConfigError, match="JOB_EVAL_MAX_NEW_TOKENS: .*auto or a number of tokens"):
            load_settings()
    monkeypatch.setenv("JOB_EVAL_MAX_NEW_TOKENS", "64")
    assert load_settings().job_eval_max_new_tokens == "64"


def test_every_setting_is_listed_in_env_example():
    """`.env.example` is where the README sends operators for the settings: none may be missing from it."""
    from pathlib import Path

    from llmft.settings import Settings

    listed = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    missing = [name.upper() for name in Settings.model_fields if f"{name.upper()}=" not in listed]
    assert missing == [], f"add to .env.example: {', '.join(missing)}"
