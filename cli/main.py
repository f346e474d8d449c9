"""`greenlight`: the command line. Exit codes: 0 released (or already live), 1 failed (and rolled back; reason
printed) or released with a failed clean-up ("released; clean-up failed: …"), 2 bad input or a Prefect server that
refused the credentials (PREFECT_API_AUTH_STRING, cli/server_auth.py): nothing changed.

  greenlight blue-green --service S (--manifest F | --image I) [options | --spec FILE] [--dry-run] [--json]
  greenlight rollback --service S
  greenlight status --service S [--json]
  greenlight history --service S [--limit N] [--json]      (from the cluster: survives a lost Prefect database)
  greenlight webhook --url URL [--on rolled-back] ...      (a Prefect automation calling a webhook)
  greenlight approve RUN_ID [--reason R] | greenlight reject RUN_ID [--reason R]
  greenlight canary --service S --stable D (--manifest F | --image I) [--steps 10,30,50,100] [--json] ...
  greenlight promote RUN_ID [--full] | greenlight abort --service S        (see cli/canary.py)
  greenlight pipeline run --spec FILE [--dry-run] | greenlight pipeline status ID [--json]  (cli/pipeline.py)
  greenlight worker --pool P [--limit N]                   (the greenlight worker type: cli/worker.py, worker/)
Cluster flags (cli/cluster_args.py): --kubeconfig F | --cluster-block NAME (a Prefect KubernetesClusterConfig
block), --context C, -n NAMESPACE.
"""

from __future__ import annotations

import argparse
import atexit
import getpass
import json
import os
import sys
from typing import Any

from prefect_greenlight.cli import no_server, pipeline, worker
from prefect_greenlight.cli.canary import add_parsers, build_canary_spec
from prefect_greenlight.cli.cluster_args import (
    cluster_flags,
    connect_from,
    credential_flags,
    credentials,
    default_namespace,
)
from prefect_greenlight.cli.parameters import check_parameter_size, refused_parameters
from prefect_greenlight.cli.quiet import quiet_expected_tracebacks
from prefect_greenlight.cli.server_auth import refused_credentials
from prefect_greenlight.cli.spec_input import add_hook_flags, base_spec, header_secrets, port_flag, set_path
from prefect_greenlight.cli.worker import cmd_worker as run_worker
from prefect_greenlight.tasks.errors import BadInput, CleanupFailed, GreenlightError, ReleaseFailed
from prefect_greenlight.tasks.prefect_adapter.starting import client_retry_defaults, start_release
from prefect_greenlight.tasks.spec import BlueGreenSpec, Cleanup, Deadlines, parse_spec

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is 2 as well; keep its message format
        self.print_usage(sys.stderr)
        raise BadInput(f"{self.prog}: {message}")


def _blue_green_parser(sub) -> None:
    bg = sub.add_parser("blue-green", help="release a new version blue -> green")
    cluster_flags(bg)
    bg.add_argument("--service", help="the Service whose selector decides the live color")
    src = bg.add_mutually_exclusive_group()
    src.add_argument("--manifest", help="green Deployment manifest (YAML file)")
    src.add_argument("--image", help="new image: green is derived from the live Deployment")
    bg.add_argument("--spec", help="release spec (YAML); flags override its fields")
    bg.add_argument("--container", help="image mode: container to update")
    bg.add_argument("--color-key", help="image mode: selector key that tells colors apart")
    bg.add_argument("--green-value", help="image mode: green's value for the color key")
    bg.add_argument("--smoke-path", help="smoke check path (default /)")
    bg.add_argument("--smoke-port", type=port_flag,
                    help="smoke check container port, number or name (default: the Service port's targetPort)")
    bg.add_argument("--expect-status", type=int, help="smoke check expected HTTP status")
    bg.add_argument("--body-contains", help="smoke check: text the body must contain")
    bg.add_argument("--no-smoke", action="store_true", help="skip smoke checks")
    bg.add_argument("--preview-service", help="point this Service at green before the switch")
    bg.add_argument("--approval", choices=["auto", "manual", "timed"], help="promotion approval mode")
    bg.add_argument("--approval-timeout", type=float, help="manual approval: seconds before it counts as rejected")
    bg.add_argument("--auto-approve-after", type=float, help="timed approval: approve after this many seconds")
    bg.add_argument("--post-switch-window", type=float, help="seconds of checks after the switch")
    bg.add_argument("--cleanup", choices=["keep", "scale-to-zero", "delete"], help="what happens to blue")
    bg.add_argument("--scale-down-delay", type=float, help="seconds between the switch and cleaning up blue")
    bg.add_argument("--rollback-window", type=float, metavar="S",
                    help="keep blue scaled and ready S seconds after the switch (rollback = selector switch only); "
                         "its clean-up is then a Prefect flow run scheduled for the window's end")
    bg.add_argument("--ready-timeout", type=float, help="seconds green has to become ready")
    bg.add_argument("--on-failure", choices=["delete", "scale-to-zero"], help="what rollback does to green")
    bg.add_argument("--lock-wait", type=float, help="seconds to wait for another release's lock (default: fail)")
    bg.add_argument("--release-id", help="identifies the release (default: generated)")
    bg.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    override_flag(bg)
    add_hook_flags(bg, "pre-release, pre-switch, post-switch, on-rollback")


def override_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--override-freeze", metavar="REASON",
                   help="release even in a freeze or outside the release window of the Prefect Variable "
                        "greenlight_release_policy; REASON is recorded in the history and the events")


def _service_parsers(sub) -> None:
    """rollback, status and history: commands about one Service."""
    rb = sub.add_parser("rollback", help="switch back to the previously live Deployment")
    cluster_flags(rb)
    rb.add_argument("--service", required=True, help="the Service to switch back")
    rb.add_argument("--cleanup", choices=["keep", "scale-to-zero", "delete"], default="scale-to-zero",
                    help="what happens to the Deployment switched away from (default scale-to-zero)")
    rb.add_argument("--scale-down-delay", type=float, default=30.0,
                    help="seconds between the switch back and cleaning up (default 30)")
    rb.add_argument("--to", metavar="DEPLOYMENT",
                    help="go to this Deployment instead of the recorded previous one (e.g. forward again)")
    rb.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")

    st = sub.add_parser("status", help="live color, both Deployments' readiness, release record")
    cluster_flags(st)
    st.add_argument("--service", required=True, help="the Service to show")

    hi = sub.add_parser("history", help="the Service's release history, read from the cluster (not from Prefect)")
    cluster_flags(hi)
    hi.add_argument("--service", required=True, help="the Service whose history to show")
    hi.add_argument("--limit", type=int, default=20, help="newest N entries (default 20)")


def answer_flags(p: argparse.ArgumentParser) -> None:
    """approve, reject, promote: the cluster where the paused run's Lease proves its process lives."""
    credential_flags(p, "kubeconfig to read the run's Lease with (default: the run's, $KUBECONFIG)",
                     "kubeconfig context (default: the run's)")


def check_answerable(args: argparse.Namespace) -> None:
    """Refuse (exit 1) to answer a run that is not paused or whose release process is gone."""
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.tasks.prefect_adapter.dead_runs import require_answerable

    require_answerable(args.run_id, args.kubeconfig, args.context, cluster_config=args.cluster_block,
                       warn=lambda m: print(f"warning: {m}", file=sys.stderr))


def _prefect_parsers(sub) -> None:
    """webhook, approve and reject: commands that talk to the Prefect API only."""
    wh = sub.add_parser("webhook", help="a Prefect automation POSTing to a webhook on release events")
    wh.add_argument("--url", required=True, help="where to POST (JSON body rendered from the event)")
    wh.add_argument("--on", action="append", dest="events", metavar="EVENT",
                    help="release event: rolled-back (default), failed, completed, ... (repeatable)")
    wh.add_argument("--name", default="greenlight-webhook", help="automation and Webhook block name")
    wh.add_argument("--header-secret", action="append", metavar="HEADER=BLOCK",
                    help="send HEADER with the value of the Prefect Secret block BLOCK (copied into the Webhook "
                         "block's secret headers; e.g. Authorization=chat-token); repeatable")
    wh.add_argument("--json", action="store_true", help="print the result as JSON")

    for verb in ("approve", "reject"):
        ap = sub.add_parser(verb, help=f"{verb} a release paused for approval")
        ap.add_argument("run_id", help="the paused flow run's id")
        ap.add_argument("--reason", default="", help="why (recorded with the answer)")
        ap.add_argument("--approver", default=os.environ.get("USER") or getpass.getuser(),
                        help="who answers (default: $USER)")
        answer_flags(ap)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="greenlight", description="Zero-downtime releases on plain Kubernetes, with Prefect.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _blue_green_parser(sub)
    _service_parsers(sub)
    _prefect_parsers(sub)
    add_parsers(sub, cluster_flags)
    pipeline.add_parsers(sub, _Parser)
    worker.add_parser(sub)
    return parser


def build_spec(args: argparse.Namespace) -> BlueGreenSpec:
    data = base_spec(args, "release")
    ns = default_namespace(args)
    for path, value in (("namespace", ns), ("service", args.service), ("container", args.container),
                        ("color_key", args.color_key), ("green_value", args.green_value),
                        ("preview_service", args.preview_service), ("approval.mode", args.approval),
                        ("approval.timeout_s", args.approval_timeout),
                        ("approval.auto_after_s", args.auto_approve_after),
                        ("post_switch.window_s", args.post_switch_window), ("cleanup.mode", args.cleanup),
                        ("cleanup.delay_s", args.scale_down_delay), ("rollback_window_s", args.rollback_window),
                        ("deadlines.ready_s", args.ready_timeout),
                        ("on_failure", args.on_failure), ("lock_wait_s", args.lock_wait),
                        ("release_id", args.release_id)):
        set_path(data, path, value)
    if args.no_smoke:
        data["smoke"] = []
    elif any(v is not None for v in (args.smoke_path, args.smoke_port, args.expect_status, args.body_contains)):
        check: dict[str, Any] = {}
        for key, value in (("path", args.smoke_path), ("port", args.smoke_port),
                           ("expect_status", args.expect_status), ("body_contains", args.body_contains)):
            set_path(check, key, value)
        data["smoke"] = [check]
    if "service" not in data:
        raise BadInput("--service is required (or `service:` in --spec)")
    return parse_spec(BlueGreenSpec, data, source=args.spec or "arguments")


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
        return
    if result.get("plan_text"):  # a dry run: the plan, numbered like the run's steps
        print(result["plan_text"])
        return
    print(f"{result.get('outcome')}: Service {result.get('service')} -> {result.get('live_deployment')}")
    for step in result.get("steps", []):
        print(f"  {step['step']:<18} {step['seconds']:>7.2f} s  {'ok' if step['ok'] else 'FAILED'}  {step['detail']}")


def cmd_blue_green(args: argparse.Namespace) -> int:
    params = dict(spec=build_spec(args), dry_run=args.dry_run, **credentials(args),
                  **({"override_freeze": args.override_freeze} if args.override_freeze else {}))
    quiet_expected_tracebacks()  # imports Prefect: bad input is refused before, in a fraction of the time
    check_parameter_size(params)
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.flows.blue_green import blue_green_release

    result = _run_flow(blue_green_release, params)
    _print(result, args.json)
    return EXIT_OK


def _run_flow(flow: Any, params: dict[str, Any]) -> dict:
    """Run a release flow in this process, started again while a busy Prefect server keeps it from starting
    (tasks/prefect_adapter/starting.py); a Prefect server refusing its parameters is bad input (exit 2)."""
    try:
        return start_release(flow, params)
    except Exception as exc:
        refused = refused_parameters(exc)
        if refused is None:
            raise
        raise refused from None


def cmd_rollback(args: argparse.Namespace) -> int:
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.flows.rollback import rollback_release

    cleanup = parse_spec(Cleanup, {"mode": args.cleanup, "delay_s": args.scale_down_delay}, "arguments")
    result = rollback_release(namespace=default_namespace(args) or "default", service=args.service,
                              cleanup=cleanup, deadlines=Deadlines(), to=args.to, dry_run=args.dry_run,
                              **credentials(args))
    _print(result, args.json)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.cli.status import print_status, service_status

    status = service_status(connect_from(args), default_namespace(args) or "default", args.service)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print_status(status)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.cli.status import print_history, release_history

    if args.limit < 1:
        raise BadInput(f"--limit must be at least 1, not {args.limit}")
    entries = release_history(connect_from(args), default_namespace(args) or "default", args.service)[-args.limit:]
    if args.json:
        print(json.dumps(entries, indent=2, sort_keys=True))
        return EXIT_OK
    print_history(entries, args.service)
    return EXIT_OK


def cmd_webhook(args: argparse.Namespace) -> int:
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.tasks.prefect_adapter.automations import event_kinds, install_webhook

    result = install_webhook(args.url, event_kinds(args.events or ["rolled-back"]), args.name,
                             header_secrets("--header-secret", args.header_secret))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        secrets = "".join(f"; {h} from Prefect Secret block {b}" for h, b in result["header_secrets"].items())
        print(f"automation {result['name']} ({result['automation_id']}): POST {args.url} on "
              f"{', '.join(result['events'])}{secrets}")
    return EXIT_OK


def cmd_answer(args: argparse.Namespace) -> int:
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.tasks.prefect_adapter.approval import resume

    check_answerable(args)
    resume(args.run_id, approve=args.command == "approve", reason=args.reason, approver=args.approver)
    print(f"{args.command}d flow run {args.run_id}")
    return EXIT_OK


def cmd_canary(args: argparse.Namespace) -> int:
    params = dict(spec=build_canary_spec(args, default_namespace(args)), dry_run=args.dry_run,
                  **credentials(args), **({"override_freeze": args.override_freeze} if args.override_freeze else {}))
    quiet_expected_tracebacks()
    check_parameter_size(params)
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.flows.canary import canary_release

    result = _run_flow(canary_release, params)
    _print(result, args.json)
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.tasks.canary.pause import resume_canary

    check_answerable(args)
    resume_canary(args.run_id, approve=True, full=args.full, reason=args.reason, approver=args.approver)
    print(f"promoted flow run {args.run_id}{' to 100 %' if args.full else ' to its next step'}")
    return EXIT_OK


def cmd_abort(args: argparse.Namespace) -> int:
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect_greenlight.flows.canary_abort import abort_canary

    result = abort_canary(namespace=default_namespace(args) or "default", service=args.service,
                          reason=args.reason, approver=args.approver, **credentials(args))
    _print(result, args.json)
    return EXIT_OK


def cmd_pipeline(args: argparse.Namespace) -> int:
    if args.pipeline_command == "run":
        return pipeline.cmd_run(args, quiet_expected_tracebacks)
    return pipeline.cmd_status(args)


def cmd_worker(args: argparse.Namespace) -> int:
    return run_worker(args)


def main(argv: list[str] | None = None) -> int:
    commands = {"blue-green": cmd_blue_green, "rollback": cmd_rollback, "status": cmd_status,
                "history": cmd_history, "webhook": cmd_webhook, "approve": cmd_answer, "reject": cmd_answer,
                "canary": cmd_canary, "promote": cmd_promote, "abort": cmd_abort,
                "pipeline": cmd_pipeline, "worker": cmd_worker}
    try:
        args = build_parser().parse_args(argv)
        if args.command in ("rollback", "abort"):  # blue-green and canary: once their input is read
            quiet_expected_tracebacks()
        return commands[args.command](args)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CleanupFailed as exc:  # released: the new version serves; a re-run finishes the clean-up
        print(f"{exc} (Service serves the new version; run the release again to finish the clean-up)",
              file=sys.stderr)
        return EXIT_FAILED
    except ReleaseFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        refused = refused_credentials(exc)  # a Prefect server with API auth on, and no or other credentials
        if refused is not None:
            print(f"error: {refused}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if not isinstance(exc, GreenlightError):
            raise
        print(f"FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED


def entry() -> None:
    """The `greenlight` command: run, then leave without the interpreter's teardown. Finalising the ~3,000
    modules Prefect and the Kubernetes client import takes ≈ 0.6 s (BENCHMARKS.md, P3) and achieves nothing for
    a process that ends here; the atexit handlers (Prefect draining its log and event workers) still run."""
    client_retry_defaults()  # before Prefect is imported: it reads its settings once
    temporary = no_server.prepare(sys.argv[1:])
    # after no_server.prepare(): this imports Prefect
    from prefect_greenlight.tasks.prefect_adapter.private_api import heartbeats_not_joined

    heartbeats_not_joined()
    code = main()
    try:
        if temporary:
            no_server.flush_before_exit()
        atexit._run_exitfuncs()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    entry()
