"""Figures: medians of runs, ratios, the machine's load next to them, and one JSON file per benchmark under
bench/results/ (what BENCHMARKS.md quotes)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from bench import harness
from bench.harness import load

RESULTS = Path(__file__).resolve().parent / "results"


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def summary(xs: list[float], digits: int = 3) -> dict:
    """Median, min, max and the raw values (rounded)."""
    return {"median": round(median(xs), digits), "min": round(min(xs), digits) if xs else None,
            "max": round(max(xs), digits) if xs else None, "runs": len(xs),
            "values": [round(x, digits) for x in xs]}


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


def command_line(timeout_s: int) -> str:
    """The exact command that reproduces this run (GL_CUT, the prototype switch, included when set)."""
    env = f"GL_CUT={os.environ['GL_CUT']} " if os.environ.get("GL_CUT") else ""
    return f"{env}timeout {timeout_s} .venv/bin/python -m bench.run {' '.join(sys.argv[1:])}"


class Recorder:
    """Collects one benchmark's figures and notes the load before and after."""

    def __init__(self, name: str, timeout_s: int, tag: str = ""):
        self.name = name + (f"-{tag}" if tag else "")
        self.data: dict = {"benchmark": self.name, "command": command_line(timeout_s),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_before": load(),
                           "python": sys.version.split()[0], "machine": platform.machine(),
                           "code": harness.code_version()}
        self.loads: list[str] = []

    def note_load(self) -> str:
        now = load()
        self.loads.append(now)
        return now

    def save(self, **figures) -> Path:
        self.data.update(figures, load_after=load(), loads_during=self.loads,
                         finished=time.strftime("%Y-%m-%d %H:%M:%S"))
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(self.data, indent=2, sort_keys=False, default=str))
        print(f"[bench] {self.name}: results in {path.relative_to(RESULTS.parent.parent)}", file=sys.stderr)
        return path


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')} load {load()}] {msg}", file=sys.stderr, flush=True)
