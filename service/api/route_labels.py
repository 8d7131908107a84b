"""A bounded metric label for a request path: the route template it matches, or "other".

BentoML labels its ``bentoml_*`` request metrics with the raw path, so every path a
client makes up was a new series: 3,000 random paths grew ``/metrics`` from 145 KB to
13.6 MB. Labelled by template (``/models/{name}/invocations``), the number of series is
fixed by the routes the gateway has, whatever clients send; a model name in the path,
known or not, never becomes a label value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

OTHER = "other"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z_]+)?\}")


class RouteLabels:
    """Maps paths to the template of the route they match (Starlette-style templates,
    at most one ``{param}`` each; a trailing one matches any rest of the path)."""

    def __init__(self, templates: Iterable[str]) -> None:
        self._exact: set[str] = set()
        patterns: list[tuple[str, str, str]] = []
        for template in templates:
            label = _PARAM.sub(lambda m: "{" + m.group(1) + "}", template)
            parts = _PARAM.split(template)
            if len(parts) == 1:
                self._exact.add(template)
            elif len(parts) == 3:
                patterns.append((parts[0], parts[2], label))
            else:
                raise ValueError(f"route template with more than one parameter: {template}")
        # Longest prefix first, so /admin/models/{name}/traffic wins over a shorter one.
        self._patterns = sorted(patterns, key=lambda p: -len(p[0]) - len(p[1]))

    def __call__(self, path: str) -> str:
        if path in self._exact:
            return path
        for prefix, suffix, label in self._patterns:
            if (
                len(path) > len(prefix) + len(suffix)
                and path.startswith(prefix)
                and path.endswith(suffix)
            ):
                return label
        return OTHER

    def labels(self) -> frozenset[str]:
        """Every value ``__call__`` can return."""
        return frozenset(self._exact | {p[2] for p in self._patterns} | {OTHER})
