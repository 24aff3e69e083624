"""Bytes as Go's encoding/json writes them: compact JSON, sorted map keys, UTF-8, and `<`, `>`, `&` escaped to
`\\u003c`, `\\u003e`, `\\u0026` (6 bytes each)."""

from __future__ import annotations

import json
import re
from typing import Any

_HTML = re.compile(r"[<>&]")


def compact(value: Any) -> str:
    """Go's encoding/json output for a decoded JSON value (sorted keys, no spaces); HTML escapes counted apart."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def nbytes(text: str) -> int:
    """Bytes of a compact JSON text as Go writes it: UTF-8, with `<`, `>`, `&` escaped to 6 bytes each."""
    if text.isascii():
        return len(text) + 5 * len(_HTML.findall(text)) if ("<" in text or ">" in text or "&" in text) else len(text)
    return len(text.encode("utf-8")) + 5 * len(_HTML.findall(text))


def size(value: Any) -> int:
    """Bytes of `value` as Go's encoding/json writes it."""
    return nbytes(compact(value))
