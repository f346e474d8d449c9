"""Reading specs and manifests: files into text, text into YAML documents, dicts into validated specs; every
problem becomes a BadInput naming the file (and the line) or the field (exit 2), never a traceback.

A file is read only if it is no larger than `MAX_FILE_BYTES` (3 MiB, the apiserver's limit on a request body: no
larger manifest could ever be applied); at most that much is read, so `/dev/zero` or an endless pipe is refused
too. It must be UTF-8 text without NUL bytes (a binary file is named as such, not fed to the parser). The YAML
itself is loaded within the bounds of `tasks.spec.yaml_bounded` (depth, aliases, nodes, duplicate keys).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from prefect_greenlight.tasks.errors import BadInput
from prefect_greenlight.tasks.spec.yaml_bounded import YAMLBoundError, load_documents

MAX_FILE_BYTES = 3 * 1024 * 1024


def read_text(path: str | Path, limit: int = MAX_FILE_BYTES) -> str:
    """The file's text, or BadInput naming the file and what is wrong with it."""
    p = Path(path)
    try:
        if p.is_dir():
            raise BadInput(f"cannot read {path}: it is a directory, not a file")
        with open(p, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise BadInput(f"{path} is larger than {limit:,} bytes, the most greenlight reads (and more than the "
                       "apiserver accepts in one request)")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise BadInput(f"{path} is a binary file, not YAML text (NUL byte at offset {nul})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path} is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                       f"({exc.reason})") from exc


def _yaml_problem(source: str, exc: yaml.YAMLError) -> str:
    """PyYAML's message without its '<unicode string>' mark lines, with the line and column of the problem."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = " ".join(str(p) for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
    return f"{source} is not valid YAML: {where}{what or str(exc).splitlines()[0]}"


def parse_yaml(text: str, source: str = "input") -> list[Any]:
    """All documents of a YAML text (empty ones dropped); BadInput naming `source` and the line otherwise."""
    try:
        docs = load_documents(text)
    except YAMLBoundError as exc:
        raise BadInput(f"{source} is refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise BadInput(_yaml_problem(source, exc)) from None
    return [d for d in docs if d is not None]


def load_yaml_documents(path: str | Path) -> list[dict[str, Any]]:
    """All YAML documents of a file, as dicts; a clear BadInput for unreadable, binary, oversized or malformed
    files and for YAML beyond the loader's bounds."""
    docs = parse_yaml(read_text(path), str(path))
    if not docs:
        raise BadInput(f"{path} holds no YAML document")
    bad = [i for i, d in enumerate(docs) if not isinstance(d, dict)]
    if bad:
        raise BadInput(f"{path}: document {bad[0] + 1} is a {type(docs[bad[0]]).__name__}, not a mapping")
    return docs


def parse_spec(model: type[BaseModel], data: dict[str, Any], source: str = "spec") -> Any:
    """Validate `data` as `model`; every problem is named by its field path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadInput([f"{source}: {'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()])
