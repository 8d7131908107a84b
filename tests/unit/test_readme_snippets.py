"""The snippet test's reading of README.md (tests/integration/readme_snippets.py): blocks,
their "not run" markers and reasons, expected output, and when the gateway has caught
up with the registry."""

from __future__ import annotations

import pytest

from service.cli.demo_hint import DemoState
from tests.integration.readme_snippets import (
    SnippetError,
    caught_up,
    missing_output,
    readme_snippets,
)

README = """# demo

```bash
curl -si localhost:3000/ping
# HTTP/1.1 200 OK
# {"status": "ready"}

# prose, not output
echo done
```

<!-- snippet: not run (needs a remote registry) -->
```bash
stageserve serve --model fraud
```

```json
{"not": "bash"}
```

1. a step:

   ```bash
   echo indented
   # indented
   ```
"""


def test_blocks_markers_and_expected_output() -> None:
    first, second, third = readme_snippets(README)
    assert (first.line, first.not_run) == (3, None)
    assert first.expected == ("HTTP/1.1 200 OK", '{"status": "ready"}')
    assert first.code.startswith("curl -si localhost:3000/ping\n")
    assert (second.not_run, second.expected) == ("needs a remote registry", ())
    assert third.code == "echo indented\n# indented\n" and third.expected == ("indented",)


@pytest.mark.parametrize(
    "marker",
    ["<!-- snippet: not run -->", "<!-- snippet: not run () -->", "<!-- snippet: skip it -->"],
)
def test_a_marker_without_a_reason_is_an_error(marker: str) -> None:
    with pytest.raises(SnippetError, match=r"README\.md:1: write the marker as"):
        readme_snippets(f"{marker}\n```bash\ntrue\n```\n")


def test_a_marker_must_sit_right_before_a_bash_block() -> None:
    with pytest.raises(SnippetError, match="not before a block"):
        readme_snippets("<!-- snippet: not run (x) -->\nsome prose\n```bash\ntrue\n```\n")
    with pytest.raises(SnippetError, match="non-bash block"):
        readme_snippets("<!-- snippet: not run (x) -->\n```json\n{}\n```\n")


def test_expected_lines_match_in_order_with_wildcards() -> None:
    output = 'HTTP/1.1 200 OK\r\nx-model-version: 10\r\n\r\n{"predictions": [184.193]}HTTP/1.1'
    assert missing_output(["HTTP/1.1 200 OK", '{"predictions": [184.19...]}'], output) is None
    assert missing_output(["x-model-version: 1"], output) == "x-model-version: 1"
    assert missing_output(['{"predictions": [...]}', "HTTP/1.1 200 OK"], output) == (
        "HTTP/1.1 200 OK"
    )


def admin(versions: dict[str, int | None], source: str = "default") -> dict:
    targets = [
        {"target": t, "version": v, "status": "ready" if v else "empty"}
        for t, v in versions.items()
    ]
    weights = {"Production": 100} if source == "default" else {"Production": 90, "Staging": 10}
    policy = {"weights": weights, "sticky": False}
    traffic = {"source": source, "policy": policy}
    return {"models": [{"name": "diabetes", "targets": targets, "traffic": traffic}]}


def test_caught_up_means_every_target_and_the_policy_follow_the_registry() -> None:
    state = DemoState("diabetes", stages={1: "Archived", 2: "Production"}, aliases={"c": 2})
    now = {"Production": 2, "Staging": None, "@c": 2}
    assert caught_up(state, admin(now))
    assert not caught_up(state, admin({**now, "Production": 1}))
    tagged = DemoState(state.model, stages=state.stages, aliases=state.aliases,
                       policy='{"weights": {"Production": 90, "Staging": 10}}')  # fmt: skip
    assert not caught_up(tagged, admin(now))
    assert caught_up(tagged, admin(now, source="registry"))
