"""/metrics behind a token, and the histogram the inference engine keeps."""

from llmft.api.app import create_app
from llmft.monitor.histogram import Histogram
from llmft.settings import load_settings


def test_a_metrics_token_closes_the_endpoint(tmp_path):
    app = create_app(load_settings(llmft_home=tmp_path, metrics_token="s3cret"))
    client = app.test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    opened = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert opened.status_code == 200 and b"llmft_jobs{" in opened.data
    assert "/metrics" not in client.get("/openapi.json").json["paths"]


def test_open_by_default(tmp_path):
    client = create_app(load_settings(llmft_home=tmp_path)).test_client()
    assert client.get("/metrics").status_code == 200


def test_histogram_is_cumulative():
    histogram = Histogram((1, 5, 10))
    for value in (0.5, 3, 3, 7, 50):
        histogram.observe(value)
    buckets, total, count = histogram.snapshot()
    assert buckets == [(1, 1), (5, 3), (10, 4)] and count == 5 and total == 63.5
