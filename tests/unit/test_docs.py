"""The README's configuration table says what service/config.py does."""

from __future__ import annotations

import re
from pathlib import Path

from service.config import SETTINGS

README = Path(__file__).resolve().parents[2] / "README.md"


def _config_rows() -> dict[str, tuple[str, str]]:
    text = README.read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `([A-Z_]+)` \| (.+?) \| (.+?) \|$", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_every_setting_is_documented_with_its_default_and_help() -> None:
    rows = _config_rows()
    assert set(rows) == {s.env for s in SETTINGS}
    for setting in SETTINGS:
        default, help_text = rows[setting.env]
        assert default == (f"`{setting.default}`" if setting.default else "—"), setting.env
        assert help_text == setting.help, setting.env


def test_readme_shows_the_two_quickstart_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
