"""MkDocs hooks (mkdocs.yml `hooks:`): the reference pages are generated from the code at every build
(hack/docs/pages.py), never committed, so they cannot go stale."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hack.docs.pages import generated_pages  # noqa: E402 - after the repository is on sys.path


def on_files(files: Files, config) -> Files:
    for uri, content in generated_pages().items():
        files.append(File.generated(config, uri, content=content))
    return files
