"""Reading specs and manifests: YAML files into dicts, dicts into validated specs; every problem becomes a
BadInput naming the file or the field (exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from prefect_greenlight.tasks.errors import BadInput


def load_yaml_documents(path: str | Path) -> list[dict[str, Any]]:
    """All YAML documents of a file, as dicts; a clear BadInput for unreadable or malformed files."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML: {exc}") from exc
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
