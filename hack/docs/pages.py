"""Which pages the documentation generates at build time, and their markdown (hack/docs/hooks.py hands them to
MkDocs). BENCHMARKS.md is published as it is in the repository, its links into the repository turned into plain
paths (they are not pages of the site)."""

from __future__ import annotations

import re

from hack.docs import records, reference
from hack.docs.records import ROOT

REPO_LINK = re.compile(r"\[([^\]]+)\]\((?!https?://|#)([^)]+)\)")


def repository_links_as_paths(markdown: str) -> str:
    """`[bench/README.md](bench/README.md)` -> `` `bench/README.md` `` (the repository's files are no pages)."""
    def path(m: re.Match) -> str:
        text, target = m.group(1), m.group(2)
        return f"`{target}`" if text in (target, f"`{target}`") else f"{text} (`{target}`)"
    return REPO_LINK.sub(path, markdown)


def generated_pages() -> dict[str, str]:
    return {
        "reference/cli.md": reference.cli_markdown(),
        "reference/spec.md": reference.spec_markdown(),
        "reference/events.md": records.events_markdown(),
        "reference/annotations.md": records.annotations_markdown(),
        "reference/exit-codes.md": records.exit_codes_markdown(),
        "reference/json-output.md": records.json_markdown(),
        "operations/benchmarks-full.md": repository_links_as_paths((ROOT / "BENCHMARKS.md").read_text()),
    }
