"""The e2e session's closing figures in pytest's terminal summary: the ClusterIP traffic tally (traffic.py) and
kube-proxy's lag histograms (proxy_metrics.py), read before the session's cluster stops.

Under pytest-xdist each worker runs its own session on its own cluster (tests/parallel.py) and the controller,
which collects no tests and so never loads tests/e2e/conftest.py, prints the summary: a worker hands its figures
over in `workeroutput`, and the hooks live in tests/conftest.py. LAG is empty until an e2e session ended here (or a
worker's was taken over), so it also says whether there is anything to print."""

from __future__ import annotations

from tests.e2e.traffic import TALLY

LAG: list[str] = []  # kube-proxy lag lines, per cluster
_KEY = "greenlight_e2e"


def ran(lag_lines: list[str]) -> None:
    """The e2e session's end, in the process that ran it (proxy_metrics.lines always gives at least one line)."""
    LAG[:] = lag_lines


def hand_over(workeroutput: dict) -> None:
    """An xdist worker's side: its figures, for the controller."""
    if LAG:
        workeroutput[_KEY] = {"traffic": TALLY.export(), "lag": list(LAG)}


def take_over(worker: str, workeroutput: dict) -> None:
    """The controller's side: one worker's figures, added to the session's."""
    data = workeroutput.get(_KEY)
    if data:
        TALLY.merge(data["traffic"])
        LAG.extend(f"{worker}: {line}" for line in data["lag"])


def lines() -> list[str]:
    return TALLY.lines() + LAG if LAG else []
