"""The canary judge (issue 23): what it adds per step, how often it is wrong, and what scipy costs.

- **Added time per step**: the judge's own computation (every metric's Mann-Whitney U test, effect sizes, the
  score) on the samples a step gathers, timed in this process (median of `--repeats`), at 40 samples a side (the
  e2e tests' 4 rounds x 10 probes of one pod) and at 600 (20 rounds x 10 probes x 3 pods). The sampling itself is
  the step's window (`count` x `interval_s`, the user's choice), not the judge's.
- **False positive / false negative rates**: `--rounds` synthetic judgements each, seeded: canary and baseline
  from the SAME distribution (any verdict but Pass is a false positive) and a canary 20 % slower (a Pass is a
  false negative), latency-like samples: uniform 50 +- 10 ms (the test app's `fault-latency-50-10`) and
  log-normal (median 50 ms, sigma 0.5, a long tail), at 40 and 200 samples a side, with the default rule
  (95 % confidence, allowed increase 1.1).
- **scipy's cost**: `import scipy.stats` in a fresh interpreter (median of 7, beside `import prefect` for scale),
  the canary flow's import with scipy and with it hidden (what the `judge` extra adds to a canary process), and the
  installed size of scipy and numpy.

Pure computation: no cluster, no Prefect server. Results in bench/results/judge-<time>.json.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.results import Recorder, say
from prefect_greenlight.tasks.decisions.judge import (
    MetricRule,
    Thresholds,
    Verdict,
    judge,
    judge_metric,
)

RULES = (MetricRule("latency"), MetricRule("errors", critical=True))


def uniform(rng: random.Random, n: int, scale: float = 1.0) -> list[float]:
    return [scale * rng.uniform(40, 60) for _ in range(n)]


def lognormal(rng: random.Random, n: int, scale: float = 1.0) -> list[float]:
    return [scale * rng.lognormvariate(3.912, 0.5) for _ in range(n)]  # e^3.912 = 50 ms median


def judge_step(latency: tuple[list[float], list[float]], errors: tuple[list[float], list[float]]) -> float:
    """Seconds the judge takes for one step's two metrics."""
    started = time.perf_counter()
    judge([judge_metric(RULES[0], *latency), judge_metric(RULES[1], *errors)], Thresholds())
    return time.perf_counter() - started


def added_time(n: int, repeats: int) -> dict:
    rng = random.Random(n)
    times = []
    for _ in range(repeats):
        latency = (uniform(rng, n), uniform(rng, n))
        errors = ([float(rng.random() < 0.01) for _ in range(n)], [float(rng.random() < 0.01) for _ in range(n)])
        times.append(judge_step(latency, errors))
    return {"samples_a_side": n, "median_ms": round(1000 * statistics.median(times), 3),
            "max_ms": round(1000 * max(times), 3)}


def rates(draw, n: int, rounds: int, seed: int) -> dict:
    """False positives (equal distributions, not Pass) and false negatives (20 % slower canary, Pass)."""
    rng = random.Random(seed)
    fp = sum(judge_metric(RULES[0], draw(rng, n), draw(rng, n)).verdict is not Verdict.PASS for _ in range(rounds))
    fn = sum(judge_metric(RULES[0], draw(rng, n, 1.2), draw(rng, n)).verdict is Verdict.PASS for _ in range(rounds))
    return {"distribution": draw.__name__, "samples_a_side": n, "rounds": rounds,
            "false_positives": fp, "false_positive_rate": fp / rounds,
            "false_negatives": fn, "false_negative_rate": fn / rounds}


HIDE_SCIPY = "import sys; sys.modules['scipy'] = sys.modules['scipy.stats'] = None; "


def import_cost(code: str, runs: int = 7) -> float:
    """Median seconds of `code` (imports) in a fresh interpreter, less the bare interpreter's start."""
    def once(text: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", text], check=True, capture_output=True)
        return time.perf_counter() - started
    bare = statistics.median(once("pass") for _ in range(runs))
    return round(statistics.median(once(code) for _ in range(runs)) - bare, 3)


def installed_mb(package: str) -> float:
    root = Path(__import__(package).__file__).parent
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    libs = root.parent / f"{package}.libs"
    size += sum(p.stat().st_size for p in libs.rglob("*") if p.is_file()) if libs.exists() else 0
    return round(size / 1e6, 1)


def run(rounds: int = 50, repeats: int = 200, tag: str = "") -> dict:
    rec = Recorder("judge", 600, tag)
    say("the judge's added time per step")
    added = [added_time(n, repeats) for n in (40, 600)]
    say(f"false positive / negative rates over {rounds} rounds each")
    errors = [rates(draw, n, rounds, seed) for seed, (draw, n) in enumerate(
        [(uniform, 40), (uniform, 200), (lognormal, 40), (lognormal, 200)])]
    say("import costs")
    canary = "import prefect_greenlight.flows.canary"
    imports = {"scipy.stats": import_cost("import scipy.stats"), "prefect": import_cost("import prefect"),
               "flows.canary (with scipy)": import_cost(canary),
               "flows.canary (scipy hidden)": import_cost(HIDE_SCIPY + canary)}
    sizes = {p: installed_mb(p) for p in ("scipy", "numpy")}
    out = {"added_time": added, "error_rates": errors, "import_s": imports, "installed_mb": sizes}
    rec.save(**out)
    return out
