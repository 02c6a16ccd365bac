"""The gunicorn options have one source: the production config module and `llmft serve` bind the settings' HOST and
PORT and run the same worker class, timeout and log format."""

import importlib

from llmft.api import gunicorn_conf
from llmft.settings import load_settings


def test_the_config_module_binds_the_settings_address(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.delenv("HOST", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    assert importlib.reload(gunicorn_conf).bind == "127.0.0.1:8000"  # the default, like `llmft serve`
    monkeypatch.setenv("HOST", "0.0.0.0")  # what the Docker image sets
    monkeypatch.setenv("PORT", "9001")
    assert importlib.reload(gunicorn_conf).bind == "0.0.0.0:9001"
    monkeypatch.undo()
    importlib.reload(gunicorn_conf)


def test_llmft_serve_and_the_config_module_share_the_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GUNICORN_THREADS", "8")
    module = importlib.reload(gunicorn_conf)
    served = gunicorn_conf.gunicorn_options(load_settings(), threads=8)
    assert served == {key: getattr(module, key) for key in served}
    assert served["worker_class"] == "gthread" and served["workers"] == 1
    monkeypatch.undo()
    importlib.reload(gunicorn_conf)
