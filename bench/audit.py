"""Count apiserver requests from the local cluster's audit log (.cache/cluster/logs/audit.log, one Metadata line
per request of a non-cluster client; hack/cluster/audit-policy.yaml).

A cursor remembers where the log ended before a run; `requests(user)` reads what was written since (following a
size rotation into `audit-<time>.log`), keeps the lines of one user and counts distinct auditIDs (a watch logs
ResponseStarted and ResponseComplete under one ID).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.harness import AUDIT_DIR, check

LOG = AUDIT_DIR / "audit.log"


@dataclass(frozen=True)
class Request:
    audit_id: str
    verb: str
    resource: str  # resource[/subresource], or the non-resource URL path
    user_agent: str
    received: str

    @property
    def kind(self) -> str:
        return f"{self.verb} {self.resource}"


class AuditCursor:
    def __init__(self) -> None:
        check(LOG.exists(), f"no audit log at {LOG}: is the local cluster up (tests/cluster/launcher.py)?")
        st = LOG.stat()
        self.inode, self.offset = st.st_ino, st.st_size

    def _chunks(self) -> list[tuple[Path, int]]:
        if LOG.stat().st_ino == self.inode:
            return [(LOG, self.offset)]
        rotated = [p for p in AUDIT_DIR.glob("audit-*.log") if p.stat().st_ino == self.inode]
        return [(p, self.offset) for p in rotated] + [(LOG, 0)]

    def requests(self, user: str, settle_s: float = 0.5) -> list[Request]:
        """Requests of `user` logged since the cursor was made (waits `settle_s` for the last lines)."""
        time.sleep(settle_s)
        needle = f'"username":"{user}"'.encode()
        seen: dict[str, Request] = {}
        for path, offset in self._chunks():
            with open(path, "rb") as f:
                f.seek(offset)
                for line in f:
                    if needle not in line:
                        continue
                    e = json.loads(line)
                    ref = e.get("objectRef") or {}
                    res = ref.get("resource")
                    res = f"{res}/{ref['subresource']}" if res and ref.get("subresource") else res
                    seen.setdefault(e["auditID"], Request(e["auditID"], e["verb"], res or e["requestURI"],
                                                          e.get("userAgent", ""), e["requestReceivedTimestamp"]))
        return sorted(seen.values(), key=lambda r: r.received)


def breakdown(reqs: list[Request]) -> dict[str, int]:
    return dict(sorted(Counter(r.kind for r in reqs).items(), key=lambda kv: (-kv[1], kv[0])))


def log_size_mb() -> float:
    return os.path.getsize(LOG) / 1e6
