"""The canary subcommands of `greenlight` (registered by cli/main.py):

  greenlight canary --service S --stable D (--manifest F | --image I) [--steps 10,30,50,100] [--total N]
                    [--analysis-path /health] [--no-analysis] [--pause S] [--approve-steps 30,50] [--json] ...
  greenlight promote RUN_ID [--full]        resume a paused canary (--full: straight to 100 %, no analysis)
  greenlight abort --service S              reject a paused canary run, or restore stable from the record

Exit codes as for blue-green: 0 released, 1 failed/aborted, 2 bad input (nothing changed).
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable
from typing import Any

from prefect_greenlight.cli.spec_input import add_hook_flags, base_spec, set_path
from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import parse_spec
from prefect_greenlight.tasks.spec.canary import CanarySpec


def _percentages(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole percentages, got {text!r}") from exc


def add_parsers(sub: Any, cluster_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    ca = sub.add_parser("canary", help="release a new version as a canary, step by step by replica counts")
    cluster_flags(ca)
    ca.add_argument("--service", help="Service selecting both versions (e.g. only app: my-app)")
    ca.add_argument("--stable", help="the Deployment serving now")
    src = ca.add_mutually_exclusive_group()
    src.add_argument("--manifest", help="canary Deployment manifest (YAML file)")
    src.add_argument("--image", help="new image: the canary is derived from stable (<stable>-canary)")
    ca.add_argument("--spec", help="canary spec (YAML); flags override its fields")
    ca.add_argument("--container", help="image mode: container to update")
    ca.add_argument("--canary-name", help="image mode: the canary Deployment's name")
    ca.add_argument("--total", type=int, help="pods of both versions (default: stable's replicas)")
    ca.add_argument("--steps", type=_percentages, help="canary percentages, e.g. 10,30,50,100 (shorthand; write "
                    "set_weight/pause/analysis steps in --spec)")
    ca.add_argument("--pause", type=float, help="seconds to pause after each step (promote ends it early)")
    ca.add_argument("--approve-steps", type=_percentages, help="steps after which a human must approve")
    ca.add_argument("--approval-timeout", type=float, help="seconds before an unanswered approval rejects")
    ca.add_argument("--analysis-path", help="HTTP analysis path (default /)")
    ca.add_argument("--analysis-port", type=int, help="HTTP analysis container port")
    ca.add_argument("--min-success-rate", type=float, help="canary's non-5xx share needed (default 0.95)")
    ca.add_argument("--max-latency-ms", type=float, help="canary's p95 latency limit (default 1000)")
    ca.add_argument("--no-analysis", action="store_true", help="no HTTP analysis")
    ca.add_argument("--failure-limit", type=int, help="failed analyses tolerated (default 0)")
    ca.add_argument("--analysis-interval", type=float, help="seconds between an analysis' rounds (default 5)")
    ca.add_argument("--analysis-count", type=int, help="rounds per analysis (default 3: a 10 s window)")
    ca.add_argument("--cleanup", choices=["delete", "scale-to-zero"], help="old stable at 100 %% (default delete)")
    ca.add_argument("--ready-timeout", type=float, help="seconds each scale-up has to become ready")
    ca.add_argument("--lock-wait", type=float, help="seconds to wait for another release's lock")
    ca.add_argument("--release-id", help="identifies the release (default: generated)")
    ca.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    ca.add_argument("--override-freeze", metavar="REASON",
                    help="release even in a freeze or outside the release window (greenlight_release_policy); "
                         "REASON is recorded in the history and the events")
    add_hook_flags(ca, "pre-release, before-first-step, between-steps, after-last-step, on-rollback")

    pr = sub.add_parser("promote", help="resume a paused canary (--full: straight to 100 %%)")
    pr.add_argument("run_id", help="the paused flow run's id")
    pr.add_argument("--full", action="store_true", help="skip the remaining steps and analyses")
    pr.add_argument("--reason", default="", help="why (recorded with the answer)")
    pr.add_argument("--approver", default=os.environ.get("USER") or getpass.getuser(),
                    help="who answers (default: $USER)")
    # lazy: cli.main imports this module
    from prefect_greenlight.cli.main import answer_flags

    answer_flags(pr)

    ab = sub.add_parser("abort", help="abort a canary: stable back to 100 %%, canary to 0")
    cluster_flags(ab)
    ab.add_argument("--service", required=True, help="the Service whose canary to abort")
    ab.add_argument("--reason", default="", help="why (recorded in the history and the report)")
    ab.add_argument("--approver", default=os.environ.get("USER") or getpass.getuser(),
                    help="who aborts (default: $USER)")


def build_canary_spec(args: argparse.Namespace, namespace: str | None) -> CanarySpec:
    data = base_spec(args, "canary")
    for path, value in (("namespace", namespace), ("service", args.service), ("stable", args.stable),
                        ("container", args.container), ("canary_name", args.canary_name), ("total", args.total),
                        ("steps", args.steps), ("pause_s", args.pause), ("approve_steps", args.approve_steps),
                        ("approval_timeout_s", args.approval_timeout), ("cleanup", args.cleanup),
                        ("deadlines.ready_s", args.ready_timeout), ("lock_wait_s", args.lock_wait),
                        ("release_id", args.release_id), ("analysis.failure_limit", args.failure_limit),
                        ("analysis.interval_s", args.analysis_interval), ("analysis.count", args.analysis_count)):
        set_path(data, path, value)
    if args.no_analysis:
        set_path(data, "analysis.http", {})  # BadInput if the spec file's analysis is not a mapping
        data["analysis"]["http"] = None
    else:
        for path, value in (("path", args.analysis_path), ("port", args.analysis_port),
                            ("min_success_rate", args.min_success_rate), ("max_latency_ms", args.max_latency_ms)):
            set_path(data, f"analysis.http.{path}", value)
    for required in ("service", "stable"):
        if required not in data:
            raise BadInput(f"--{required} is required (or `{required}:` in --spec)")
    return parse_spec(CanarySpec, data, source=args.spec or "arguments")
