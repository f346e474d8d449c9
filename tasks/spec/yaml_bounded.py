"""YAML as greenlight reads it: the dialect Kubernetes reads (its YAML-to-JSON conversion), within stated bounds,
so that no file can make loading hang, exhaust memory or crash (issue 13, "hostile input").

Bounds, each refused with a message naming the file, the line and the bound:
- `MAX_DEPTH` = 100 nested collections (aliases count with the depth of what they stand for). A Deployment
  manifest nests about 12 deep (spec.template.spec.affinity...matchExpressions[].values[]); everything that later
  walks the data recursively (pydantic, json, deepcopy, the Kubernetes client) stays far from Python's 1,000.
- `MAX_ALIASES` = 10,000 alias uses, and `MAX_NODES` = 200,000 nodes counted after alias expansion (an alias counts
  as every node it stands for). A "billion laughs" file of a kilobyte expands to ~10^9 nodes and is refused at the
  alias that crosses the bound, before anything is copied: in milliseconds, with no memory to speak of. 200,000 is
  twice the nodes of a 1.1 MiB Deployment carrying 20,000 environment variables, beyond any manifest the apiserver
  stores (etcd's 1.5 MiB request limit); aliases are expanded into real copies (as Kubernetes does), never shared.
- Duplicate keys in one mapping are an error naming the key and both lines, never silently last-wins. (Keys
  brought in by a `<<` merge may be overridden: that is what a merge is for.)

The dialect of Kubernetes (sigs.k8s.io/yaml: YAML 1.1 types, then JSON): timestamps and sexagesimal numbers stay
strings (`1:20`, `8080:80`, `2024-05-01` are not numbers or dates to the apiserver), non-string mapping keys become
strings, `.inf`/`.nan` are refused (JSON has neither), and only the core tags (str, int, float, bool, null, map,
seq) are accepted.

The builder reads the parser's event stream (libyaml's C parser when PyYAML has it) and builds the data without
recursion, so neither the depth of the input nor the size of an anchor can overflow a stack; the expanded size and
depth of every anchor are known before an alias is copied.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

MAX_DEPTH = 100
MAX_ALIASES = 10_000
MAX_NODES = 200_000

_T = "tag:yaml.org,2002:"
_MERGE_TAG, _STR_TAG = _T + "merge", _T + "str"
_SCALAR_TAGS = {_T + t for t in ("str", "int", "float", "bool", "null")}
_COLLECTION_TAGS = {None, "!", _T + "map", _T + "seq"}
# YAML 1.1 ints and floats as PyYAML resolves them, minus the sexagesimal forms (Kubernetes reads `1:20` as text).
_INT = re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_DECIMAL = re.compile(r"[-+]?[0-9][0-9_]*")
_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_T):] if tag.startswith(_T) else tag


class YAMLBoundError(ValueError):
    """The input is well-formed YAML but crosses a bound or leaves the Kubernetes dialect."""

    def __init__(self, line: int, message: str):
        self.line = line
        super().__init__(f"line {line}: {message}")


def _kubernetes_resolvers(base: dict[str, list]) -> dict[str, list]:
    swap = {_T + "int": _INT, _T + "float": _FLOAT}
    return {first: [(tag, swap.get(tag, rx)) for tag, rx in entries if tag != _T + "timestamp"]
            for first, entries in base.items()}


_MERGE = object()  # the `<<` key
_NO_KEY = object()


@dataclass
class _Open:
    """A collection being built: its value so far, its expanded size and height, a mapping's pending key."""

    value: dict | list
    anchor: str | None
    line: int
    size: int = 1
    height: int = 1
    key: Any = _NO_KEY
    key_lines: dict[str, int] = field(default_factory=dict)
    merges: list[tuple[Any, int]] = field(default_factory=list)


class BoundedLoader(_Base):
    """A safe loader (libyaml's when available) that builds documents from the event stream within the bounds
    above. `documents()` returns every document of the stream; YAMLBoundError or yaml.YAMLError otherwise."""

    yaml_implicit_resolvers = _kubernetes_resolvers(_Base.yaml_implicit_resolvers)

    def __init__(self, stream: str):
        super().__init__(stream)
        self.nodes = 0
        self.aliases = 0
        self.stack: list[_Open] = []
        self.anchors: dict[str, tuple[Any, int, int]] = {}
        self.docs: list[Any] = []
        self.tags: dict[str, str] = {}  # plain scalar -> resolved tag (one regex pass per distinct value)

    def documents(self) -> list[Any]:
        try:
            while not isinstance(event := self.get_event(), StreamEndEvent):
                self._event(event)
        finally:
            self.dispose()
        return self.docs

    def _event(self, ev: Any) -> None:
        line = (ev.start_mark.line + 1) if ev.start_mark else 0
        if isinstance(ev, ScalarEvent):
            self._count(1, line)
            self._add(self._scalar(ev, line), 1, 0, line, ev.anchor)
        elif isinstance(ev, AliasEvent):
            self._alias(ev.anchor, line)
        elif isinstance(ev, CollectionStartEvent):
            if len(self.stack) >= MAX_DEPTH:
                raise YAMLBoundError(line, f"nested deeper than {MAX_DEPTH} levels")
            if ev.tag not in _COLLECTION_TAGS:
                raise YAMLBoundError(line, f"tag {_short_tag(ev.tag)} is not supported (only YAML's core tags)")
            self._count(1, line)
            self.stack.append(_Open({} if isinstance(ev, MappingStartEvent) else [], ev.anchor, line))
        elif isinstance(ev, (SequenceEndEvent, MappingEndEvent)):
            top = self.stack.pop()
            value = _merged(top) if isinstance(top.value, dict) else top.value
            self._add(value, top.size, top.height, top.line, top.anchor)
        elif isinstance(ev, DocumentEndEvent):
            self.anchors = {}  # anchors never reach into the next document

    def _scalar(self, ev: ScalarEvent, line: int) -> Any:
        tag = ev.tag
        if tag is None:
            if not ev.implicit[0]:
                return ev.value  # quoted: a string
            tag = self.tags.get(ev.value)
            if tag is None:
                tag = self.tags[ev.value] = self.resolve(ScalarNode, ev.value, ev.implicit)
        elif tag == "!":
            tag = _STR_TAG
        elif tag in _SCALAR_TAGS and tag != _STR_TAG and not _explicit_fits(tag, ev.value, self):
            raise YAMLBoundError(line, f"{ev.value[:40]!r} is not a {_short_tag(tag)}")  # PyYAML would crash
        if tag == _MERGE_TAG:
            return _MERGE
        if tag not in _SCALAR_TAGS:
            raise YAMLBoundError(line, f"tag {_short_tag(tag)} is not supported (only YAML's core tags)")
        if tag == _STR_TAG:
            return ev.value
        try:
            value = self.yaml_constructors[tag](self, ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark))
        except (ValueError, IndexError, OverflowError) as exc:
            raise YAMLBoundError(line, f"{ev.value[:40]!r} is not a {_short_tag(tag)} ({exc})") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise YAMLBoundError(line, f"{ev.value!r} is not a finite number (JSON has no infinity or NaN)")
        return value

    def _alias(self, anchor: str, line: int) -> None:
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise YAMLBoundError(line, f"more than {MAX_ALIASES} alias uses")
        if anchor not in self.anchors:
            raise YAMLBoundError(line, f"alias *{anchor} names no anchor defined before it")
        value, size, height = self.anchors[anchor]
        if self.nodes + size > MAX_NODES:
            raise YAMLBoundError(line, f"alias *{anchor} expands to {size:,} nodes: more than {MAX_NODES:,} nodes "
                                 f"in all after alias expansion ({self.nodes:,} before it)")
        self._count(size, line)
        if len(self.stack) + height > MAX_DEPTH:
            raise YAMLBoundError(line, f"alias *{anchor} nests deeper than {MAX_DEPTH} levels")
        self._add(_copy(value), size, height, line, None)

    def _count(self, nodes: int, line: int) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise YAMLBoundError(line, f"more than {MAX_NODES:,} nodes")

    def _add(self, value: Any, size: int, height: int, line: int, anchor: str | None) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, size, height)
        if not self.stack:
            self.docs.append("<<" if value is _MERGE else value)
            return
        top = self.stack[-1]
        top.size += size
        if height >= top.height:
            top.height = height + 1
        if isinstance(top.value, list):
            top.value.append("<<" if value is _MERGE else value)
        elif top.key is _NO_KEY:
            top.key = _key(value, line)
            if top.key is not _MERGE:
                if top.key in top.key_lines:
                    raise YAMLBoundError(line, f"duplicate key {top.key!r} (first at line {top.key_lines[top.key]})")
                top.key_lines[top.key] = line
        else:
            if top.key is _MERGE:
                top.merges.append((value, line))
            else:
                top.value[top.key] = "<<" if value is _MERGE else value
            top.key = _NO_KEY


def _explicit_fits(tag: str, value: str, resolver: Any) -> bool:
    """`!!int 12` fits, `!!int a` does not: an explicit core tag must be what the plain scalar would resolve to
    (and `!!float 3` is a float, as YAML 1.1 has it)."""
    resolved = resolver.resolve(ScalarNode, value, (True, False))
    return resolved == tag or (tag == _T + "float" and resolved == _T + "int" and _DECIMAL.fullmatch(value) is not None)


def _copy(value: Any) -> Any:
    """A fresh copy of built data (dicts, lists, immutable scalars), nested at most MAX_DEPTH deep."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _key(value: Any, line: int) -> Any:
    """A mapping key as Kubernetes sees it: scalars become their JSON text; collections are refused."""
    if value is _MERGE or isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        raise YAMLBoundError(line, "a mapping key must be a scalar, not a collection")
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return str(value)


def _merged(top: _Open) -> dict:
    """A mapping with its `<<` merges applied: explicit keys win, then the earlier merged mapping."""
    if not top.merges:
        return top.value  # type: ignore[return-value]
    sources: list[dict] = []
    for value, line in top.merges:
        for src in value if isinstance(value, list) else [value]:
            if not isinstance(src, dict):
                raise YAMLBoundError(line, "a << merge takes a mapping or a list of mappings")
            sources.append(src)
    out: dict = {}
    for src in reversed(sources):
        out.update(src)
    out.update(top.value)
    return out


def load_documents(text: str) -> list[Any]:
    """Every document of `text` (None for an empty one). YAMLBoundError or yaml.YAMLError when it is refused."""
    return BoundedLoader(text).documents()
