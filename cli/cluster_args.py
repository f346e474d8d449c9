"""The cluster flags of greenlight's commands and what they become: credential parameters for the flows (paths and
names only, never a secret), a client, the default namespace. One source of credentials per command: a kubeconfig
file or a Prefect KubernetesClusterConfig block (`--cluster-block NAME`), else $KUBECONFIG or in-cluster."""

from __future__ import annotations

import argparse

from prefect_greenlight.tasks.kube.credentials import block_namespace


def credential_flags(p: argparse.ArgumentParser, kubeconfig_help: str, context_help: str) -> None:
    source = p.add_mutually_exclusive_group()
    source.add_argument("--kubeconfig", help=kubeconfig_help)
    source.add_argument("--cluster-block", metavar="NAME", help="a Prefect KubernetesClusterConfig block's name "
                        "(prefect-greenlight[blocks]): its kubeconfig instead of a file")
    p.add_argument("--context", help=context_help)


def cluster_flags(p: argparse.ArgumentParser) -> None:
    credential_flags(p, "path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)",
                     "kubeconfig context to use (with --cluster-block: default the block's)")
    p.add_argument("-n", "--namespace", help="namespace (default: the context's, else 'default')")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def default_namespace(args: argparse.Namespace) -> str | None:
    if args.namespace:
        return args.namespace
    if args.cluster_block:  # the block's context's namespace; a missing block is refused here, before any change
        return block_namespace(args.cluster_block, args.context)
    try:
        # lazy: the Kubernetes client (≈ 0.1 s) is not needed for --help or bad input
        from kubernetes import config

        _, active = config.list_kube_config_contexts(config_file=args.kubeconfig)
        if args.context:
            contexts, _ = config.list_kube_config_contexts(config_file=args.kubeconfig)
            active = next((c for c in contexts if c["name"] == args.context), active)
        return (active or {}).get("context", {}).get("namespace")
    except Exception:  # noqa: BLE001 - no kubeconfig: in-cluster or default
        return None


def credentials(args: argparse.Namespace) -> dict[str, str | None]:
    """The flows' credential parameters from the flags (names and paths only)."""
    return dict(kubeconfig=args.kubeconfig, context=args.context, cluster_config=args.cluster_block)


def connect_from(args: argparse.Namespace):
    # lazy: the Kubernetes client (≈ 0.1 s) is not needed for --help or bad input
    from prefect_greenlight.tasks.kube.client import connect

    return connect(**credentials(args))
