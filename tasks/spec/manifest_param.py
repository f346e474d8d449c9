"""How a manifest travels as a flow parameter.

Prefect's server refuses flow-run parameters whose compact JSON is over its `server.api.max_parameter_size`
(PREFECT_SERVER_API_MAX_PARAMETER_SIZE, 512 KiB by default: HTTP 422), while the apiserver stores objects of up to
~1.5 MiB (etcd's default request limit) and reads requests of up to 3 MiB. So a manifest Kubernetes accepts can be
too large for Prefect. Such a manifest is carried packed: when its compact JSON is over `PACK_ABOVE` (64 KiB), the
spec serializes it (in JSON mode: what Prefect sends, stores and shows) as

    {"greenlight.io/gzip-base64": "<base64 of the gzip of the manifest's compact JSON>"}

and validating a spec unpacks it again, so the flow, a retry, a run from the UI or from a deployment all get the
manifest back exactly. Kubernetes manifests compress well (a 1.1 MiB Deployment of 20,000 environment variables
packs into 0.2 MiB). Whether the packed parameters fit is decided before any flow run exists, by the CLI
(`parameter_size`, cli/spec_input.py): over the limit is BadInput naming the size and the limit (exit 2).

Unpacking is bounded like reading a file: at most `MAX_UNPACKED` bytes (3 MiB, the apiserver's request limit),
JSON nested at most MAX_DEPTH deep, an object at the top.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import zlib
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

from prefect_greenlight.tasks.spec.yaml_bounded import MAX_DEPTH

PACKED_KEY = "greenlight.io/gzip-base64"
PACK_ABOVE = 64 * 1024
MAX_UNPACKED = 3 * 1024 * 1024


def compact_json(value: Any) -> bytes:
    """JSON as Prefect measures parameters: compact separators, ASCII escapes."""
    return json.dumps(value, separators=(",", ":")).encode()


def pack(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as it travels: itself when small, else packed (deterministic: no time in the gzip header)."""
    raw = compact_json(manifest)
    if len(raw) <= PACK_ABOVE:
        return manifest
    return {PACKED_KEY: base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode("ascii")}


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return True
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return False


def unpack(value: Any) -> Any:
    """A packed manifest back as the dict it was; anything else unchanged. ValueError (a field error) when the
    packed form is broken or too large."""
    if not (isinstance(value, dict) and len(value) == 1 and PACKED_KEY in value):
        return value
    blob = value[PACKED_KEY]
    try:
        raw = base64.b64decode(blob, validate=True) if isinstance(blob, str) else None
    except (binascii.Error, ValueError):
        raw = None
    if raw is None:
        raise ValueError(f"{PACKED_KEY} must be base64 text")
    inflate = zlib.decompressobj(wbits=31)
    try:
        data = inflate.decompress(raw, MAX_UNPACKED + 1)
    except zlib.error as exc:
        raise ValueError(f"{PACKED_KEY} is not gzip data ({exc})") from None
    if len(data) > MAX_UNPACKED:
        raise ValueError(f"{PACKED_KEY} unpacks to more than {MAX_UNPACKED:,} bytes")
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{PACKED_KEY} does not hold JSON ({str(exc)[:100]})") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{PACKED_KEY} holds a {type(manifest).__name__}, not a manifest object")
    if _too_deep(manifest):
        raise ValueError(f"{PACKED_KEY} holds JSON nested deeper than {MAX_DEPTH} levels")
    return manifest


def finite(manifest: dict[str, Any]) -> dict[str, Any]:
    """Refuse infinities and NaN anywhere in the manifest (ValueError naming the path): JSON has neither, so
    Kubernetes could not take them, and on its way to Prefect such a value would silently become null."""
    stack: list[tuple[Any, str]] = [(manifest, "")]
    while stack:
        v, path = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{path.lstrip('.') or 'the manifest'} is {v!r}: not a finite number (JSON has none)")
        if isinstance(v, dict):
            stack.extend((c, f"{path}.{k}") for k, c in v.items())
        elif isinstance(v, list):
            stack.extend((c, f"{path}[{i}]") for i, c in enumerate(v))
    return manifest


# The field type of `manifest` in both specs: a plain object in the schema (the UI form), packed when large.
Manifest = Annotated[dict[str, Any], BeforeValidator(unpack), AfterValidator(finite),
                     PlainSerializer(pack, when_used="json")]
