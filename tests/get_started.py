"""The commands of the Get started page (docs/get-started.md), as written there: its fenced blocks, each a
language and its command lines (comments and blank lines dropped). Read by tests/unit/test_get_started.py (the
cheap ones, run) and tests/e2e/test_get_started.py (the install block, run)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "get-started.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def blocks() -> list[tuple[str, list[str]]]:
    """[(language, [command, ...])] in the page's order; a command is a line without its `# comment`."""
    out = []
    for lang, body in FENCE.findall(PAGE.read_text()):
        lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in body.splitlines()]
        out.append((lang, [line for line in lines if line and not line.startswith("#")]))
    return out


def commands(lang: str) -> list[str]:
    return [c for block_lang, cmds in blocks() if block_lang == lang for c in cmds]


def first_release() -> list[str]:
    """The block of a first release on your own cluster (it starts with `export KUBECONFIG=`)."""
    return next(cmds for lang, cmds in blocks() if lang == "bash" and cmds[0].startswith("export KUBECONFIG="))
