"""The image reference grammar of distribution/reference (what containerd and the kubelet parse), as one regular
expression that both the Python check and the spec's JSON schema (the Prefect server and UI) use, so the two draw
the same line:

  reference := name [ ":" tag ] [ "@" digest ]
  name      := [ domain [ ":" port ] "/" ] path-component ( "/" path-component )*      at most 255 characters
  domain    := dns-ish components separated by "." (letters of either case, digits, inner "-") | "[" IPv6 "]"
  path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
  tag       := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
  digest    := sha256 ":" 64 hex | sha384 ":" 96 hex | sha512 ":" 128 hex                (lowercase hex)

ASCII only: every class is spelled out (Python's `\\w` and `\\d` would admit any Unicode letter or digit, so
`nginx:tägé` passed). The digest rule is go-digest's, which the reference parser applies after the grammar: only
the registered algorithms, each with its exact length (upstream's grammar alone allows any algorithm with >= 32
hex digits, and Parse then refuses them as unsupported or of invalid length). The 255-character limit on the name
(upstream's NameTotalLengthMax, domain included) is a look-ahead, so the JSON schema enforces it too.

Like upstream, a first component followed by "/" is taken as a registry host when it can be one, so
"UPPER/case" passes (host UPPER); an upper-case repository path does not.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

NAME_MAX = 255
_ALNUM = "[a-z0-9]+"
_SEPARATOR = "(?:[._]|__|-+)"
_PATH_COMPONENT = f"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_NAME = f"(?:{_HOST}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST = "(?:" + "|".join(f"{alg}:[a-f0-9]{{{n}}}" for alg, n in DIGEST_HEX.items()) + ")"
# The name is what precedes an optional ":tag" and "@digest"; neither contains "/" or "@", so this split is exact.
_NAME_LENGTH = f"(?=[^@]{{1,{NAME_MAX}}}(?::{_TAG})?(?:@|$))"
# "(?!.*\n)": Python's `$` (the Prefect server's jsonschema) also matches before a final newline; JavaScript's not.
PATTERN = f"^(?!.*\\n){_NAME_LENGTH}{_NAME}(?::{_TAG})?(?:@{_DIGEST})?$"
MAX_LENGTH = NAME_MAX + 1 + 128 + 1 + len("sha512:") + 128
IMAGE_REFERENCE = re.compile(PATTERN)


def valid_image(ref: str) -> bool:
    """The whole string is a reference by the grammar above (no surrounding whitespace, ASCII only)."""
    return isinstance(ref, str) and len(ref) <= MAX_LENGTH and IMAGE_REFERENCE.fullmatch(ref) is not None


def _check_image(ref: str) -> str:
    if not valid_image(ref):
        shown = f"{ref[:100]!r}..." if len(ref) > 100 else repr(ref)
        raise ValueError(f"{shown} is not a valid image reference")
    return ref


# The JSON schema carries the same pattern, so the Prefect server (and the UI's form) refuse a bad image before a
# flow run exists.
ImageRef = Annotated[str, AfterValidator(_check_image), WithJsonSchema(
    {"type": "string", "maxLength": MAX_LENGTH, "pattern": PATTERN,
     "description": "Image reference: [registry/]repository[:tag][@digest]"})]
