"""Both inference backends meet the `InferenceBackend` protocol: every method with its exact signature (close
included: gunicorn's worker_exit calls it), and the counters and histograms /metrics reads."""

import inspect

from llmft.serve.backend import InferenceBackend
from llmft.serve.engine import Engine
from llmft.serve.vllm_engine import VllmEngine

METHODS = [name for name, value in vars(InferenceBackend).items()
           if callable(value) and not name.startswith("_")]


def test_the_protocol_names_what_the_api_and_metrics_call():
    assert sorted(METHODS) == ["close", "loaded", "recent_tokens_per_second", "submit"]
    assert set(InferenceBackend.__annotations__) == {"stats", "histograms"}


def test_both_backends_define_every_method_with_the_protocols_signature():
    for backend in (Engine, VllmEngine):  # VllmEngine needs vLLM to start, not to be inspected
        for name in METHODS:
            assert inspect.signature(getattr(backend, name)) == inspect.signature(getattr(InferenceBackend, name)), \
                (backend.__name__, name)


def test_the_engine_counts_what_metrics_reads_before_any_request():
    engine = Engine()
    assert {"requests", "tokens", "loads", "evictions"} <= set(engine.stats)
    assert set(engine.histograms) == {"ttft", "batch"}
    assert engine.loaded() == [] and engine.recent_tokens_per_second() == 0.0
