"""Where a release's Kubernetes credentials come from: a kubeconfig file, a prefect-kubernetes
`KubernetesClusterConfig` block (by its document name), or the in-cluster ServiceAccount.

`choose_source` decides (pure: the environment is passed in); `load_cluster_block` reads the block from the Prefect
API through prefect-kubernetes' block class: the one place the Kubernetes wing touches Prefect, because connect()
takes a block's name (README "Layout"). Only names and paths leave this module: the block's kubeconfig (tokens,
client keys) is handed to the Kubernetes client's own Configuration and never logged, returned as text or put into a
parameter.

prefect-kubernetes is the `blocks` extra (`pip install 'prefect-greenlight[blocks]'`): importing it costs about a
second (it imports its worker, kopf and kubernetes_asyncio; README, "Kubernetes credentials"), so it is imported
only when a block is named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from prefect_greenlight.tasks.errors import BadInput, block_not_loaded

BLOCK_TYPE = "kubernetes-cluster-config"
# Prefect's block document names: lowercase letters, digits and dashes.
_BLOCK_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
EXTRA_HINT = "install prefect-greenlight[blocks] (pip install 'prefect-greenlight[blocks]') to use cluster blocks"


class SourceKind(str, Enum):
    KUBECONFIG = "kubeconfig"
    BLOCK = "block"
    IN_CLUSTER = "in-cluster"


@dataclass(frozen=True)
class CredentialSource:
    """Which credentials to load; `describe()` is what a Kube's config_source says (names, never secrets)."""

    kind: SourceKind
    path: str | None = None  # kubeconfig file
    context: str | None = None  # kubeconfig context (of the file, or of the block's kubeconfig)
    block: str | None = None  # KubernetesClusterConfig document name

    def describe(self, block_context: str | None = None) -> str:
        if self.kind is SourceKind.KUBECONFIG:
            return f"kubeconfig {self.path}" + (f" context {self.context}" if self.context else "")
        if self.kind is SourceKind.BLOCK:
            context = self.context or block_context
            return f"Prefect block {BLOCK_TYPE}/{self.block}" + (f" context {context}" if context else "")
        return "in-cluster service account"


def block_name(value: str) -> str:
    """The document name of a cluster block given as `NAME` or `kubernetes-cluster-config/NAME`."""
    name = value.strip()
    if name.startswith(BLOCK_TYPE + "/"):
        name = name[len(BLOCK_TYPE) + 1:]
    if not _BLOCK_NAME.match(name):
        raise BadInput(f"cluster block name {value!r}: a Prefect block document name is lowercase letters, digits "
                       "and dashes (e.g. prod-cluster)")
    return name


def choose_source(kubeconfig: str | None, context: str | None, cluster_block: str | None, *,
                  env_kubeconfig: str, home_kubeconfig: str, exists) -> CredentialSource:
    """A named block, else a kubeconfig (flag, then $KUBECONFIG's first file, then ~/.kube/config if it exists),
    else the in-cluster ServiceAccount. A kubeconfig and a block together are ambiguous: BadInput. `context`
    with a block picks another context of the block's kubeconfig (default: the block's context_name)."""
    if cluster_block is not None:
        if kubeconfig:
            raise BadInput(f"both a kubeconfig ({kubeconfig}) and a cluster block ({cluster_block}) were given: "
                           "name one source of Kubernetes credentials")
        return CredentialSource(SourceKind.BLOCK, context=context or None, block=block_name(cluster_block))
    path = kubeconfig or env_kubeconfig or home_kubeconfig
    if kubeconfig or exists(path):
        return CredentialSource(SourceKind.KUBECONFIG, path=path, context=context or None)
    return CredentialSource(SourceKind.IN_CLUSTER)


@dataclass(frozen=True, repr=False)
class ClusterBlock:
    """A loaded block's kubeconfig (as a dict) and context. repr/str name the block only: the dict holds secrets."""

    name: str
    config: dict[str, Any]
    context_name: str | None

    def __repr__(self) -> str:
        return f"ClusterBlock({BLOCK_TYPE}/{self.name}, context {self.context_name})"

    __str__ = __repr__


def _block_class():
    try:
        # lazy: prefect-kubernetes costs ≈ 1.2 s more (pyproject, the [blocks] extra)
        from prefect_kubernetes.credentials import KubernetesClusterConfig
    except ImportError as exc:
        raise BadInput(f"a cluster block was named but prefect-kubernetes is not installed: {EXTRA_HINT}") from exc
    return KubernetesClusterConfig


def load_cluster_block(name: str) -> ClusterBlock:
    """The KubernetesClusterConfig block document `name` from the Prefect API; BadInput naming it when there is no
    such block. Its configure_client()/get_api_client() are not used: they configure kubernetes_asyncio's global
    default (and are async); the caller loads the dict into a Configuration of its own."""
    try:
        block = _block_class().load(name, _sync=True)
    except ValueError as exc:
        raise block_not_loaded(exc, BLOCK_TYPE, name, f"KubernetesClusterConfig.from_file(PATH).save({name!r})",
                               "KubernetesClusterConfig") from None
    config = block.config
    if hasattr(config, "get_secret_value"):  # a SecretDict, should a later prefect-kubernetes make it one
        config = config.get_secret_value()
    if not isinstance(config, dict) or not config:
        raise BadInput(f"Prefect block {BLOCK_TYPE}/{name} holds no kubeconfig")
    return ClusterBlock(name, config, block.context_name or None)



def context_namespace(config: dict[str, Any], context: str | None) -> str | None:
    """The namespace a kubeconfig (as a dict) sets for `context` (default: its current-context); None if none."""
    name = context or config.get("current-context")
    for entry in config.get("contexts") or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return ((entry.get("context") or {}).get("namespace")) or None
    return None


def block_namespace(cluster_block: str, context: str | None) -> str | None:
    """The default namespace of a cluster block's context (the CLI's -n default, as for a kubeconfig)."""
    block = load_cluster_block(block_name(cluster_block))
    return context_namespace(block.config, context or block.context_name)
