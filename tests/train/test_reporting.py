"""What a run reports besides metrics.jsonl: TensorBoard event files, MLflow (when
MLFLOW_TRACKING_URI is set), and the machine's readings in every training log."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_run import settings, small_data  # noqa: F401  (the run tests' data fixture and settings)

from llmft.train.config import load_config
from llmft.train.run import train


@pytest.mark.slow
def test_tensorboard_mlflow_and_system_readings(tmp_path, small_data, tiny_model_dir, monkeypatch):  # noqa: F811
    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "llmft-test")
    output = tmp_path / "run"
    result = train(load_config(None, settings(small_data, output, "training.max_steps=4")), progress=False)
    assert result.status == "succeeded"

    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    steps = [row for row in rows if "loss" in row]
    assert all({"cpu_percent", "ram_gb", "ram_percent"} <= row.keys() for row in steps)
    assert all(0 <= row["cpu_percent"] and row["ram_gb"] > 0 for row in steps)

    events = EventAccumulator(str(output / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/learning_rate", "train/tokens_per_second", "eval/loss"} <= set(scalars)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert events.Scalars("train/loss")[0].value == pytest.approx(steps[0]["loss"], rel=1e-6)

    mlflow.set_tracking_uri(tracking)
    runs = mlflow.search_runs(experiment_names=["llmft-test"], output_format="list")
    assert len(runs) == 1 and runs[0].info.run_name == "run"
    history = mlflow.MlflowClient(tracking).get_metric_history(runs[0].info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert history[0].value == pytest.approx(steps[0]["loss"], rel=1e-6)

