"""One speed budget's record and the timing rule every budget uses (maskcls.bench.budgets, maskcls.bench.season)."""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass


@dataclass
class Budget:
    name: str
    figure: float
    limit: float
    unit: str
    higher_is_better: bool = False

    @property
    def ok(self) -> bool:
        return self.figure >= self.limit if self.higher_is_better else self.figure <= self.limit

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def line(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return f"{self.name:58s} {self.figure:10.3f} {self.unit:5s} budget {sign} {self.limit:g}  " \
               f"{'ok' if self.ok else 'OVER'}"


def median_seconds(fn, n: int = 5) -> float:
    fn()  # warm-up: a rerender in a running studio, not the first one
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


