"""The histogram the inference engine keeps."""

from llmft.monitor.histogram import Histogram


def test_histogram_is_cumulative():
    histogram = Histogram((1, 5, 10))
    for value in (0.5, 3, 3, 7, 50):
        histogram.observe(value)
    buckets, total, count = histogram.snapshot()
    assert buckets == [(1, 1), (5, 3), (10, 4)] and count == 5 and total == 63.5
