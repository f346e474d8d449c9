"""Thin Kubernetes I/O: a client bundle built from a kubeconfig (never the global default config), raw-JSON
reads, server-side apply, guarded patches, scale and delete. Every call has a client-side timeout; idempotent
calls are retried on transient errors for up to RETRY.budget_s (long enough to ride out an apiserver restart,
short enough that a hung apiserver ends a release in bounded time); non-idempotent ones are re-sent only when the
request certainly never reached the apiserver (connection refused, connect timeout, 429), else the caller re-reads
and decides.

urllib3's own retries are switched off: one retry layer, with backoff and a time budget, instead of two that
multiply (urllib3 would re-send a GET three more times after each read timeout).

Nothing here knows which cluster it talks to.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from prefect_greenlight.tasks.errors import BadInput, GuardFailed, PermanentError, TemporaryError
from prefect_greenlight.tasks.kube.credentials import SourceKind, choose_source, load_cluster_block

log = logging.getLogger(__name__)
T = TypeVar("T")
FIELD_MANAGER = "greenlight"
TIMEOUT = (5, 30)  # connect (TCP + TLS handshake), read: a hung apiserver never hangs a release


@dataclass(frozen=True)
class RetryPolicy:
    """Jittered exponential backoff, capped, within a total time budget."""

    budget_s: float = 30.0
    base_s: float = 0.2
    cap_s: float = 3.0

    def delay(self, attempt: int, elapsed_s: float, jitter: float) -> float | None:
        """Seconds to sleep before attempt `attempt + 1` (attempts count from 1), `jitter` in [0, 1); None when
        the next attempt would start after the budget is spent."""
        delay = min(self.cap_s, self.base_s * 2 ** (attempt - 1)) * (0.5 + jitter)
        return None if elapsed_s + delay > self.budget_s else delay


RETRY = RetryPolicy()


@dataclass(frozen=True)
class Kube:
    """API handles sharing one ApiClient. `config_source` says where the credentials came from (never the secret)."""

    api: client.ApiClient
    config_source: str

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def discovery(self) -> client.DiscoveryV1Api:
        return client.DiscoveryV1Api(self.api)

    @property
    def coordination(self) -> client.CoordinationV1Api:
        return client.CoordinationV1Api(self.api)

    @property
    def autoscaling(self) -> client.AutoscalingV2Api:
        return client.AutoscalingV2Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    def fresh_client(self) -> client.ApiClient:
        """A new ApiClient on the same configuration (port-forward swaps `request` on the client it uses)."""
        return client.ApiClient(self.api.configuration)


def connect(kubeconfig: str | None = None, context: str | None = None, cluster_config: str | None = None) -> Kube:
    """Credentials from a KubernetesClusterConfig block named `cluster_config`, else a kubeconfig (flag, then
    $KUBECONFIG, then ~/.kube/config), else the in-cluster service account (tasks/kube/credentials.py)."""
    source = choose_source(kubeconfig, context, cluster_config,
                           env_kubeconfig=os.environ.get("KUBECONFIG", "").split(os.pathsep)[0],
                           home_kubeconfig=os.path.expanduser("~/.kube/config"), exists=os.path.exists)
    cfg = client.Configuration()
    described = source.describe()
    try:
        if source.kind is SourceKind.BLOCK:
            block = load_cluster_block(source.block)
            described = source.describe(block.context_name)
            config.load_kube_config_from_dict(config_dict=block.config, context=source.context or block.context_name,
                                              client_configuration=cfg, temp_file_path=None)
        elif source.kind is SourceKind.KUBECONFIG:
            config.load_kube_config(config_file=source.path, context=source.context, client_configuration=cfg)
        else:
            config.load_incluster_config(client_configuration=cfg)
    except (config.ConfigException, OSError, ValueError) as exc:
        raise BadInput(f"cannot load Kubernetes credentials from {described}: {_short(exc)}") from None
    cfg.retries = False  # our retrying() is the only retry layer
    return Kube(client.ApiClient(cfg), described)


def _short(exc: Exception) -> str:
    """A credentials error's text, cut short. The client's messages name files, contexts and fields, not values;
    the cut keeps an odd one from echoing a whole blob. Chained with `from None`: Prefect logs a failed flow's
    traceback, and the original exception's locals or arguments are no business of it."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def classify(exc: Exception, what: str) -> Exception:
    """Turn a client error into one that says whether to retry, naming the call."""
    if isinstance(exc, ApiException):
        detail = exc.reason
        try:
            detail = json.loads(exc.body or "{}").get("message") or detail
        except (ValueError, AttributeError):
            pass
        if exc.status in (429, 500, 502, 503, 504) or exc.status == 0:
            return TemporaryError(f"{what}: HTTP {exc.status}: {detail}")
        if exc.status == 403:
            return PermanentError(f"{what}: forbidden: {detail}")
        if exc.status in (409, 422):
            return GuardFailed(f"{what}: HTTP {exc.status}: {detail}")
        return PermanentError(f"{what}: HTTP {exc.status}: {detail}")
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return TemporaryError(f"{what}: {type(exc).__name__}: {exc}")
    return exc


def never_sent(exc: Exception) -> bool:
    """True when the request certainly did not reach the apiserver (or was refused before it was processed), so
    re-sending even a non-idempotent one cannot apply it twice: no connection could be made (refused, connect or
    TLS handshake timeout), or HTTP 429 (rejected before processing). A read timeout or a dropped connection is
    ambiguous: the request may have been applied."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        exc = exc.reason  # type: ignore[assignment]
    if isinstance(exc, ApiException):
        return exc.status == 429
    return isinstance(exc, urllib3.exceptions.ConnectTimeoutError) or isinstance(exc, ConnectionRefusedError)


def retrying(what: str, fn: Callable[[], T], policy: RetryPolicy | None = None,
             retry_if: Callable[[Exception, Exception], bool] | None = None, *,
             sleep: Callable[[float], None] | None = None, clock: Callable[[], float] | None = None) -> T:
    """Run a call, retrying transient failures with jittered exponential backoff until the policy's budget is
    spent. `retry_if(original, classified)` decides what may be retried (default: every retryable error, which
    suits idempotent calls). The first retry of a call is logged as a warning (a release that slows down because
    the apiserver is restarting says so), later ones at info."""
    policy = policy or RETRY
    sleep, clock = sleep or time.sleep, clock or time.monotonic
    retry_if = retry_if or (lambda _exc, err: bool(getattr(err, "retryable", False)))
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            err = classify(exc, what)
            elapsed = clock() - started
            # The first failure always gets one retry on a fresh connection, however long it took: a read that
            # sat its whole read timeout on a stalled connection must not spend the budget alone.
            spent = elapsed if attempt > 1 else 0.0
            delay = policy.delay(attempt, spent, random.random()) if retry_if(exc, err) else None
            if delay is None:
                if attempt > 1 and getattr(err, "retryable", False):
                    err = type(err)(f"{err} (gave up after {attempt} attempts over {elapsed:.0f} s)")
                raise err from exc
            log.log(logging.WARNING if attempt == 1 else logging.INFO, "%s failed (%s); retry %d in %.1f s "
                    "(retrying for up to %.0f s)", what, err, attempt, delay, policy.budget_s)
            sleep(delay)


def _raw(resp: Any) -> dict:
    return json.loads(resp.data)


def read(kube: Kube, kind: str, namespace: str, name: str, policy: RetryPolicy | None = None) -> dict | None:
    """One object as a dict, or None when it does not exist."""
    api, method = {"Service": ("core", "read_namespaced_service"),
                   "Deployment": ("apps", "read_namespaced_deployment"),
                   "Lease": ("coordination", "read_namespaced_lease"),
                   "HorizontalPodAutoscaler": ("autoscaling", "read_namespaced_horizontal_pod_autoscaler"),
                   "Job": ("batch", "read_namespaced_job")}[kind]
    fn = getattr(getattr(kube, api), method)

    def call() -> dict | None:
        try:
            return _raw(fn(name, namespace, _preload_content=False, _request_timeout=TIMEOUT))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    return retrying(f"read {kind} {namespace}/{name}", call, policy)


PAGE = 500  # objects per list request: a namespace with thousands of pods is read in pages, never in one answer


def list_objects(kube: Kube, kind: str, namespace: str, label_selector: str | None = None,
                 policy: RetryPolicy | None = None) -> list[dict]:
    """Every object of a kind in the namespace (optionally by label), in pages of PAGE. `policy`: e.g. a short
    budget for reads that only feed a report."""
    fn = {
        "Deployment": kube.apps.list_namespaced_deployment,
        "ReplicaSet": kube.apps.list_namespaced_replica_set,
        "Pod": kube.core.list_namespaced_pod,
        "EndpointSlice": kube.discovery.list_namespaced_endpoint_slice,
        "HorizontalPodAutoscaler": kube.autoscaling.list_namespaced_horizontal_pod_autoscaler,
        "Job": kube.batch.list_namespaced_job,
    }[kind]
    kwargs = {"label_selector": label_selector} if label_selector else {}
    items, token = [], None
    while True:
        page = {**kwargs, "limit": PAGE, **({"_continue": token} if token else {})}
        body = retrying(f"list {kind} in {namespace}", lambda: _raw(
            fn(namespace, _preload_content=False, _request_timeout=TIMEOUT, **page)), policy)
        items += body["items"]
        token = (body.get("metadata") or {}).get("continue")
        if not token:
            return items


def namespace_exists(kube: Kube, namespace: str) -> bool:
    def call() -> bool:
        try:
            kube.core.read_namespace(namespace, _preload_content=False, _request_timeout=TIMEOUT)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    return retrying(f"read Namespace {namespace}", call)


_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{namespace}/deployments/{name}",
    "Service": "/api/v1/namespaces/{namespace}/services/{name}",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers/{name}",
    "HTTPRoute": "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{name}",
}


def raw_patch(kube: Kube, kind: str, namespace: str, name: str, body: Any, content_type: str,
              query: list[tuple[str, str]] | None = None) -> dict:
    """PATCH with an explicit content type (the generated client cannot send apply-patch+yaml)."""
    params = {"path_params": {"namespace": namespace, "name": name},
              "query_params": [("fieldManager", FIELD_MANAGER), *(query or [])],
              "header_params": {"Content-Type": content_type, "Accept": "application/json"}, "body": body,
              "auth_settings": ["BearerToken"]}
    if not hasattr(kube.api, "param_serialize"):  # kubernetes < 35: call_api serialises and sends
        return _raw(kube.api.call_api(_PATHS[kind], "PATCH", **params, _preload_content=False,
                                      _request_timeout=TIMEOUT, _return_http_data_only=True))
    # kubernetes >= 35 (the pydantic generator): serialise, send, and raise for an error status ourselves
    method, url, headers, data, post = kube.api.param_serialize("PATCH", _PATHS[kind], **params)
    resp = kube.api.call_api(method, url, header_params=headers, body=data, post_params=post,
                             _request_timeout=TIMEOUT)
    resp.read()
    if not 200 <= resp.status <= 299:
        raise ApiException(http_resp=resp)
    return _raw(resp)


def apply_deployment(kube: Kube, namespace: str, manifest: dict, dry_run: bool = False) -> dict:
    """Server-side apply (field manager `greenlight`, conflicts forced as `kubectl apply --server-side
    --force-conflicts` would); idempotent, so retried."""
    name = manifest["metadata"]["name"]
    body = {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
    query = [("force", "true")] + ([("dryRun", "All")] if dry_run else [])
    return retrying(f"apply Deployment {namespace}/{name}", lambda: raw_patch(
        kube, "Deployment", namespace, name, body, "application/apply-patch+yaml", query))


def json_patch(kube: Kube, kind: str, namespace: str, name: str, ops: list[dict]) -> dict:
    """A JSON patch; its `test` ops make it a guarded write (422 -> GuardFailed). Re-sent only while the apiserver
    certainly never got it (down, restarting, 429); after an ambiguous failure the caller re-reads and decides."""
    return retrying(f"patch {kind} {namespace}/{name}", lambda: raw_patch(
        kube, kind, namespace, name, ops, "application/json-patch+json"),
        retry_if=lambda exc, _err: never_sent(exc))


def scale(kube: Kube, namespace: str, name: str, replicas: int) -> None:
    body = {"spec": {"replicas": replicas}}
    retrying(f"scale Deployment {namespace}/{name} to {replicas}", lambda: kube.apps.patch_namespaced_deployment_scale(
        name, namespace, body, field_manager=FIELD_MANAGER, _preload_content=False, _request_timeout=TIMEOUT))


def delete_if_present(what: str, delete: Callable[[], object]) -> bool:
    """Run one delete call, retried like every idempotent call; False when the object was already gone (404)."""
    def call() -> bool:
        try:
            delete()
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    return retrying(what, call)


def delete_deployment(kube: Kube, namespace: str, name: str, wait_s: float = 60) -> bool:
    """Delete (foreground: its ReplicaSets and pods go first) and wait until it is gone. False when it was
    already gone."""
    deleted = delete_if_present(f"delete Deployment {namespace}/{name}", lambda: kube.apps.delete_namespaced_deployment(
        name, namespace, propagation_policy="Foreground", _preload_content=False, _request_timeout=TIMEOUT))
    deadline = time.monotonic() + wait_s
    # Waited for even when the delete said 404: a retried delete whose first attempt landed says so too.
    while read(kube, "Deployment", namespace, name) is not None:
        if time.monotonic() > deadline:
            raise TemporaryError(f"Deployment {namespace}/{name} still terminating after {wait_s:.0f} s")
        time.sleep(0.2)
    return deleted
