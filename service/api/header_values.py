"""Response header values that any name can travel in.

HTTP header values are bytes, which servers encode as Latin-1; a model name MLflow
accepts, such as ``modèle-€``, cannot be written as one, and the response failed after
the prediction was made. Values that are printable ASCII without ``%`` go out as they
are (every name a client saw before); anything else is percent-encoded as UTF-8
(RFC 3986). Either way, ``urllib.parse.unquote(value)`` gives the name back exactly.
"""

from __future__ import annotations

import functools
import string
from urllib.parse import quote

# Printable ASCII but "%" (the escape character itself) and space (which a header value
# may not start or end with: simplest to always escape it when escaping at all).
_SAFE = "".join(c for c in string.printable if c not in "% \t\n\r\x0b\x0c")


@functools.lru_cache(maxsize=1024)
def header_value(text: str) -> str:
    """``text`` as a header value: unchanged when it can be, else percent-encoded."""
    if text.isascii() and text.isprintable() and "%" not in text and text == text.strip():
        return text
    return quote(text, safe=_SAFE)
