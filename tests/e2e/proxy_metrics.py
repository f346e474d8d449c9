"""kube-proxy's own account of its lag, printed in the session's terminal summary next to the traffic totals.

The traffic checks bound how long after an endpoint leaves a Service a new connection may still reach it
(traffic_checks.PROXY_LAG_S), and the test cluster's pods drain for a few seconds after deletion (the kwok
`pod-delete` stage) so that a scale-down loses no request. Both rest on how fast endpoint changes reach the
node's rules. kube-proxy measures that itself:

- `kubeproxy_network_programming_duration_seconds`: from the change that triggered an EndpointSlice update
  (the `endpoints.kubernetes.io/last-change-trigger-time` the EndpointSlice controller sets) until the rules
  that carry it are programmed: controller lag + kube-proxy lag. Coarse: the trigger time comes from whole-second
  timestamps (a pod condition's lastTransitionTime, a Service's creationTimestamp), so it reads up to 1 s high,
  and for a new Service it includes the time its pods took to become ready;
- `kubeproxy_sync_proxy_rules_duration_seconds`: how long one nftables sync takes.

Read from kube-proxy's metrics port, which listens on 127.0.0.1 inside the cluster's network namespace.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from tests.cluster.netplane import KUBE_PROXY_METRICS

HISTOGRAMS = {
    "kubeproxy_network_programming_duration_seconds": "endpoint change -> rules programmed",
    "kubeproxy_sync_proxy_rules_duration_seconds": "one nftables sync",
}
_BUCKET = re.compile(r'^(?P<name>\w+)_bucket\{(?P<labels>[^}]*)\} (?P<n>[0-9.e+]+)$')
_LE = re.compile(r'le="([^"]+)"')


@dataclass(frozen=True)
class Histogram:
    name: str
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending; the last is +Inf

    @property
    def count(self) -> int:
        return int(self.buckets[-1][1]) if self.buckets else 0

    def quantile_bound(self, q: float) -> float:
        """The upper bound of the bucket that holds the q-quantile (inf if it lies beyond the last bound)."""
        target = q * self.count
        return next((le for le, n in self.buckets if n >= target), float("inf"))

    def above(self, seconds: float) -> tuple[float, int]:
        """(b, n): n observations lie above b, the first bucket bound >= `seconds`."""
        le, at = next(((le, n) for le, n in self.buckets if le >= seconds), (float("inf"), self.count))
        return le, int(self.count - at)


def parse(text: str) -> dict[str, Histogram]:
    found: dict[str, list[tuple[float, float]]] = {}
    for line in text.splitlines():
        m = _BUCKET.match(line)
        if not m or m["name"] not in HISTOGRAMS or 'ip_family="IPv6"' in m["labels"]:
            continue  # the cluster is IPv4 only: kube-proxy's IPv6 proxier syncs nothing that matters here
        if le := _LE.search(m["labels"]):
            found.setdefault(m["name"], []).append((float(le.group(1)), float(m["n"])))
    return {name: Histogram(name, tuple(sorted(b))) for name, b in found.items()}


def scrape(netns: str, timeout_s: float = 10.0) -> str:
    code = ("import urllib.request,sys;"
            f"sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{KUBE_PROXY_METRICS}/metrics',"
            f"timeout={timeout_s}).read().decode())")
    ip = shutil.which("ip") or "/usr/sbin/ip"
    proc = subprocess.run([ip, "netns", "exec", netns, sys.executable, "-S", "-c", code], capture_output=True,
                          text=True, timeout=timeout_s + 10)
    if proc.returncode:
        raise RuntimeError(proc.stderr.strip()[-300:])
    return proc.stdout


def _fmt(bound: float) -> str:
    return "> last bucket" if bound == float("inf") else f"<= {bound:g} s"


def lines(netns: str | None) -> list[str]:
    if not netns:
        return ["kube-proxy lag: no traffic check ran, not read"]
    try:
        hists = parse(scrape(netns))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return [f"kube-proxy lag: metrics not readable in {netns}: {exc}"]
    out = []
    for name, what in HISTOGRAMS.items():
        h = hists.get(name)
        if h is None or not h.count:
            out.append(f"kube-proxy {what}: no observations")
            continue
        out.append(f"kube-proxy {what}: {h.count} observations, p50 {_fmt(h.quantile_bound(0.5))}, "
                   f"p99 {_fmt(h.quantile_bound(0.99))}, max {_fmt(h.quantile_bound(1.0))}; "
                   + ", ".join(f"{n} over {le:g} s" for le, n in (h.above(1.0), h.above(3.0))))
    return out
