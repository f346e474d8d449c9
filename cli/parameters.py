"""The size of a release's flow parameters, decided at the input stage, before any flow run exists.

Prefect's server refuses flow-run parameters whose compact JSON is over `server.api.max_parameter_size` (512 KiB
by default) with HTTP 422, and Prefect's client error then carries the whole request body: the manifest, echoed to
the terminal in a traceback. greenlight instead measures the parameters as Prefect will send them (pydantic models
in JSON mode, so a large manifest already packed: tasks/spec/manifest_param.py) against the limit of the local
Prefect settings (the same setting configures a local server) and refuses an oversized release as BadInput naming
the size and the limit (exit 2, nothing started). A server configured with a smaller limit still answers 422;
`refused_parameters` turns that answer into the same kind of BadInput, without the echoed body.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_jsonable_python

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec.manifest_param import compact_json


def parameter_limit() -> int:
    """The Prefect server's limit on flow-run parameters, from the local settings (0: no limit)."""
    # lazy: Prefect (≈ 1.7 s) reads its settings once, after entry() sets them
    from prefect.settings import get_current_settings

    return int(get_current_settings().server.api.max_parameter_size)


def check_parameter_size(parameters: dict[str, Any], limit: int | None = None) -> int:
    """The parameters' size in bytes as Prefect measures it; BadInput when it is over the limit."""
    size = len(compact_json(to_jsonable_python(parameters)))
    limit = parameter_limit() if limit is None else limit
    if limit and size > limit:
        raise BadInput(f"spec.manifest: the release's flow parameters are {size:,} bytes of JSON (a manifest over "
                       f"64 KiB already gzip-packed), more than the Prefect server's limit of {limit:,} bytes "
                       "(server.api.max_parameter_size, PREFECT_SERVER_API_MAX_PARAMETER_SIZE); nothing was started")
    return size


def refused_parameters(exc: BaseException) -> BadInput | None:
    """The Prefect server's 422 on the flow run's parameters as BadInput with the server's reason (and without the
    request body Prefect's error message repeats); None for any other error."""
    response = getattr(exc, "response", None)
    if getattr(response, "status_code", None) != 422:
        return None
    try:
        detail = response.json().get("exception_detail") or []  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - not the answer we know: not ours to explain
        return None
    reasons = [str(d.get("msg", ""))[:300].rstrip(".") for d in detail if isinstance(d, dict)
               and "parameters" in [str(x) for x in d.get("loc") or []]]
    if not reasons:
        return None
    return BadInput(f"spec.manifest: the Prefect server refused the flow run's parameters (HTTP 422): "
                    f"{'; '.join(reasons)}; nothing was started")
