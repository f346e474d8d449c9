"""The shape of a real workload, decided from manifests alone: which container an image is for, which port a
check reaches, whether a Deployment would ever roll out.

- **Containers.** greenlight never changes a container the user did not name. With one container, it is the one.
  With several and no name, it is the one container whose image *repository* equals the new image's (tag and
  digest aside; `nginx` and `docker.io/library/nginx` are the same repository); none or several is refused,
  naming every container. Init containers are changed only when named.
- **Ports.** A check reaches a pod where the Service would: the Service port's `targetPort`, a number or a
  container port *name* resolved per pod (pods of two versions may number a named port differently). An explicit
  port (number or name) overrides it. Not the first containerPort of the first container: that is often a
  metrics exporter.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"


def image_repository(ref: str) -> str:
    """`registry/path` of an image reference, without tag or digest, with Docker Hub's implicit parts filled in
    (`nginx:1` -> `docker.io/library/nginx`), so two references to one repository compare equal."""
    name = ref.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost" and not first.startswith("[")):
        first, rest = DEFAULT_DOMAIN, name
    if first in ("index.docker.io", "registry-1.docker.io"):
        first = DEFAULT_DOMAIN
    if first == DEFAULT_DOMAIN and "/" not in rest:
        rest = f"library/{rest}"
    return f"{first}/{rest}"


@dataclass(frozen=True)
class ContainerChoice:
    kind: str  # "containers" | "initContainers"
    index: int
    name: str
    why: str


def _describe(containers: list[dict]) -> str:
    return ", ".join(f"{c.get('name')} ({c.get('image')})" for c in containers)


def choose_container(pod_spec: dict, image: str, named: str | None, owner: str) -> ContainerChoice:
    """The one container `image` is for, or a ValueError naming every container (the caller makes it BadInput)."""
    containers = pod_spec.get("containers") or []
    if named:
        for kind in ("containers", "initContainers"):
            for i, c in enumerate(pod_spec.get(kind) or []):
                if c.get("name") == named:
                    return ContainerChoice(kind, i, named, "named")
        every = containers + (pod_spec.get("initContainers") or [])
        raise ValueError(f"container {named!r} not found in Deployment {owner!r} (it has {_describe(every)})")
    if len(containers) == 1:
        return ContainerChoice("containers", 0, containers[0].get("name", ""), "the only container")
    wanted = image_repository(image)
    same = [i for i, c in enumerate(containers) if image_repository(str(c.get("image", ""))) == wanted]
    if len(same) == 1:
        c = containers[same[0]]
        return ContainerChoice("containers", same[0], c.get("name", ""), f"its image repository is {wanted}")
    which = "none" if not same else f"{len(same)}"
    raise ValueError(f"Deployment {owner!r} has {len(containers)} containers and {which} of them run {wanted}: "
                     f"name the one to update with --container (containers: {_describe(containers)})")


def set_container_image(pod_spec: dict, choice: ContainerChoice, image: str) -> None:
    pod_spec[choice.kind][choice.index]["image"] = image


def declared_ports(pod_spec: dict) -> dict[str, int]:
    """Named container ports of a pod template or pod (name -> number), over every container."""
    out = {}
    for c in pod_spec.get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") and (p.get("protocol") or "TCP") == "TCP":
                out.setdefault(p["name"], int(p["containerPort"]))
    return out


def service_port(ports: list[dict] | tuple[dict, ...], wanted: int | str | None) -> dict | None:
    """Of a Service's `spec.ports`, the one a check aims at: by name or number, default the first; None when the
    Service has no ports or none is `wanted`."""
    if wanted is None:
        return ports[0] if ports else None
    for p in ports:
        if wanted in (p.get("name"), p.get("port")):
            return p
    return None


def resolve_port(pod_spec: dict, explicit: int | str | None, service_port_: dict | None) -> int | None:
    """The container port a check reaches on one pod: an explicit port (number, or a containerPort name),
    else the Service port's targetPort (number, or a name resolved on this pod; absent = the port itself),
    else the first declared containerPort, else 80. None: a name this pod does not declare."""
    if isinstance(explicit, int):
        return explicit
    if isinstance(explicit, str):
        return declared_ports(pod_spec).get(explicit)
    if service_port_ is not None:
        target = service_port_.get("targetPort", service_port_.get("port"))
        if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
            return int(target)
        return declared_ports(pod_spec).get(target)
    for c in pod_spec.get("containers") or []:
        for p in c.get("ports") or []:
            return int(p["containerPort"])
    return 80


def missing_port_names(pod_spec: dict, explicit: int | str | None, service_port_: dict | None) -> str | None:
    """A port name the pods would need to declare for a check (or the Service) to reach them, if they do not."""
    if resolve_port(pod_spec, explicit, service_port_) is not None:
        return None
    if isinstance(explicit, str):
        return explicit
    return str((service_port_ or {}).get("targetPort"))


def port_problems(pod_spec: dict, checks: list, service_ports: list[dict] | tuple[dict, ...],
                  subject: str) -> list[str]:
    """Named ports that the Service or a check needs and `subject`'s pods do not declare, each naming the field.
    A Service port whose targetPort name green lacks would never route to green."""
    declared = declared_ports(pod_spec)
    problems = []
    for p in service_ports:
        target = p.get("targetPort")
        if isinstance(target, str) and not target.isdigit() and target not in declared:
            problems.append(f"Service port {p.get('name') or p.get('port')} targets port name {target!r}, which "
                            f"{subject}'s containers do not declare (they declare {sorted(declared) or 'none'})")
    for i, check in enumerate(checks):
        if getattr(check, "service_port", None) is not None and service_port(service_ports, check.service_port) is None:
            problems.append(f"smoke[{i}].service_port {check.service_port!r}: the Service has no such port")
        missing = missing_port_names(pod_spec, check.port, service_port(service_ports, check.service_port))
        if missing and isinstance(check.port, str):
            problems.append(f"smoke[{i}].port {check.port!r}: {subject}'s containers declare no port of that name")
    return problems


def paused(manifest: dict) -> bool:
    return bool((manifest.get("spec") or {}).get("paused"))


def service_warnings(service: dict, scale_down_delay_s: float) -> list[str]:
    """What a Service's own settings mean for a switch: sticky clients and DNS caches outlive it."""
    spec = service.get("spec") or {}
    name = service["metadata"]["name"]
    out = []
    if spec.get("sessionAffinity") == "ClientIP":
        timeout = int(((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
                      or 10800)
        out.append(f"Service {name!r} has sessionAffinity ClientIP: clients already on blue stay on it for up to "
                   f"{timeout} s after the switch")
        if scale_down_delay_s < timeout:
            out.append(f"the scale-down delay ({scale_down_delay_s:g} s) is shorter than the session affinity "
                       f"timeout ({timeout} s): sticky clients may reach blue after it is scaled down")
    if spec.get("clusterIP") == "None":
        out.append(f"Service {name!r} is headless: clients resolve pod IPs through DNS and may keep blue's addresses "
                   "until their DNS cache expires; keep blue up (scale-down delay) at least that long")
    return out


def selector_query(selector: dict | None) -> str | None:
    """A LabelSelector (matchLabels and matchExpressions) as a list/watch `labelSelector` query; None for an
    empty one (which would select everything: the caller then lists unscoped)."""
    if not selector:
        return None
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], ",".join(sorted(e.get("values") or []))
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                      "DoesNotExist": f"!{key}"}[op])
    return ",".join(parts) or None
