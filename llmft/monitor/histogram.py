"""A histogram kept without a metrics library: cumulative bucket counts, sum and count, safe to
read from another thread. The inference engine fills them; /metrics reads them."""

import threading


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * len(self.buckets)
        self._sum, self._count = 0.0, 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._sum += value
            self._count += 1
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1
                    break

    def snapshot(self) -> tuple[list[tuple[float, int]], float, int]:
        """([(upper bound, observations <= it), ...], sum, count): Prometheus' cumulative form."""
        with self._lock:
            cumulative, total = [], 0
            for bound, count in zip(self.buckets, self._counts):
                total += count
                cumulative.append((bound, total))
            return cumulative, self._sum, self._count
