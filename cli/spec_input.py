"""Turning command-line arguments into a release spec, shared by every release command: a `--spec` YAML file as
the base, `--manifest FILE` or `--image REF` as the new version, then flags overriding single fields; hooks from
`--hook-job POINT=FILE` / `--hook-webhook POINT=URL` (the common case; the spec's `hooks:` can say more; the
flag-given webhooks' headers from Prefect Secret blocks by `--hook-header-secret HEADER=BLOCK`) and
`manifest_file:` in a spec's Job hooks, read relative to the spec file."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec import load_yaml_documents


def set_path(d: dict, path: str, value: Any) -> None:
    """d["a"]["b"] = value for path "a.b"; None leaves the field alone. A spec file whose "a" is not a mapping is
    BadInput naming the field (a flag cannot set a field inside a number or a list)."""
    if value is None:
        return
    *parents, leaf = path.split(".")
    for i, p in enumerate(parents):
        d = d.setdefault(p, {})
        if not isinstance(d, dict):
            raise BadInput(f"spec: {'.'.join(parents[:i + 1])}: is a {type(d).__name__}, not a mapping "
                           f"(cannot set {path})")
    d[leaf] = value


def base_spec(args: argparse.Namespace, what: str) -> dict[str, Any]:
    """The spec file's fields with the new version (manifest or image) from the flags."""
    data: dict[str, Any] = {}
    if args.spec:
        docs = load_yaml_documents(args.spec)
        if len(docs) != 1:
            raise BadInput(f"{args.spec}: expected one {what} spec document, found {len(docs)}")
        data = docs[0]
    _read_hook_files(data, Path(args.spec).parent if args.spec else Path("."))
    _hooks_from_flags(data, args)
    if args.manifest:
        docs = load_yaml_documents(args.manifest)
        deployments = [d for d in docs if d.get("kind") == "Deployment"]
        if len(deployments) != 1:
            kinds = ", ".join(str(d.get("kind")) for d in docs)
            raise BadInput(f"{args.manifest}: expected exactly one Deployment, found kinds: {kinds}")
        data["manifest"] = deployments[0]
        data.pop("image", None)
    if args.image:
        data["image"] = args.image
        data.pop("manifest", None)
    return data


def port_flag(value: str) -> int | str:
    """--smoke-port and friends: a number stays a number, anything else is a port name (the spec validates it)."""
    return int(value) if value.isdigit() else value


def add_hook_flags(p: argparse.ArgumentParser, points: str) -> None:
    p.add_argument("--hook-job", action="append", metavar="POINT=FILE",
                   help=f"a Job hook from a manifest file at POINT ({points}); repeatable")
    p.add_argument("--hook-webhook", action="append", metavar="POINT=URL",
                   help=f"a webhook gate at POINT ({points}): 2xx goes on, anything else fails; repeatable")
    p.add_argument("--hook-green-image", action="store_true",
                   help="the --hook-job Jobs run the release's new image (every container)")
    p.add_argument("--hook-timeout", type=float,
                   help="seconds each flag-given hook has (default: 600 for a Job, 10 for a webhook)")
    p.add_argument("--hook-header-secret", action="append", metavar="HEADER=BLOCK",
                   help="the --hook-webhook gates send HEADER with the value of the Prefect Secret block BLOCK "
                        "(e.g. Authorization=gate-token; the spec's `secret_headers:` per hook); repeatable")


def header_secrets(flag: str, values: list[str] | None) -> dict[str, str]:
    """`HEADER=BLOCK` flags as {header: block name}; BadInput for a malformed one or a header given twice."""
    out: dict[str, str] = {}
    for value in values or []:
        header, sep, block = value.partition("=")
        header, block = header.strip(), block.strip()
        if not sep or not header or not block:
            raise BadInput(f"{flag} takes HEADER=BLOCK, BLOCK naming a Prefect Secret block (e.g. {flag} "
                           f"Authorization=gate-token), not {value!r}")
        if header.lower() in (h.lower() for h in out):
            raise BadInput(f"{flag}: header {header!r} given more than once")
        out[header] = block
    return out


def _one_job(path: str | Path, where: str) -> dict:
    docs = load_yaml_documents(path)
    jobs = [d for d in docs if d.get("kind") == "Job"]
    if len(jobs) != 1:
        kinds = ", ".join(str(d.get("kind")) for d in docs)
        raise BadInput(f"{where}: {path}: expected exactly one Job, found kinds: {kinds}")
    return jobs[0]


def _read_hook_files(data: dict[str, Any], base: Path) -> None:
    """`manifest_file:` of a spec's Job hook becomes the inline `manifest` (what the flow parameter carries)."""
    hooks = data.get("hooks")
    for i, hook in enumerate(hooks if isinstance(hooks, list) else []):
        job = hook.get("job") if isinstance(hook, dict) else None
        if isinstance(job, dict) and "manifest_file" in job:
            if "manifest" in job:
                raise BadInput(f"spec: hooks.{i}.job: give manifest or manifest_file, not both")
            path = Path(str(job.pop("manifest_file")))
            job["manifest"] = _one_job(path if path.is_absolute() else base / path, f"spec: hooks.{i}.job")


def _split(flag: str, value: str) -> tuple[str, str]:
    point, sep, rest = value.partition("=")
    if not sep or not point or not rest:
        raise BadInput(f"{flag} takes POINT=VALUE (e.g. {flag} pre-switch=...), not {value!r}")
    return point, rest


def _hooks_from_flags(data: dict[str, Any], args: argparse.Namespace) -> None:
    jobs, webhooks = getattr(args, "hook_job", None) or [], getattr(args, "hook_webhook", None) or []
    secrets = header_secrets("--hook-header-secret", getattr(args, "hook_header_secret", None))
    if secrets and not webhooks:
        raise BadInput("--hook-header-secret is for the --hook-webhook gates: give one (a spec file's webhook "
                       "hooks name theirs in `secret_headers:`)")
    if not jobs and not webhooks:
        return
    hooks = data.setdefault("hooks", [])
    if not isinstance(hooks, list):
        raise BadInput(f"spec: hooks: is a {type(hooks).__name__}, not a list (cannot add --hook-* flags)")
    timeout = {"timeout_s": args.hook_timeout} if args.hook_timeout is not None else {}
    names = {h.get("name") for h in hooks if isinstance(h, dict)}

    def unique(base: str) -> str:
        base = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")[:50] or "hook"
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        return name

    for value in jobs:
        point, path = _split("--hook-job", value)
        job = _one_job(path, "--hook-job")
        name = unique(str((job.get("metadata") or {}).get("name") or Path(path).stem))
        hooks.append({"name": name, "at": point, "job": {"manifest": job, "green_image": args.hook_green_image,
                                                         **timeout}})
    for value in webhooks:
        point, url = _split("--hook-webhook", value)
        webhook = {"url": url, **timeout, **({"secret_headers": secrets} if secrets else {})}
        hooks.append({"name": unique(f"{point}-webhook"), "at": point, "webhook": webhook})
