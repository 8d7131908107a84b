"""The pieces `stageserve serve` is made of: flag types, the runtime folder's naming."""

from __future__ import annotations

import argparse
import os

import pytest

from service.cli.flags import number_flag
from service.cli.runtime_dir import default_runtime_dir, share_runtime_dir

even = number_flag(int, lambda n: n % 2 == 0, "{text} is no number", "{text} is odd")


def test_number_flag_keeps_what_it_accepts() -> None:
    assert even("4") == 4


@pytest.mark.parametrize(("text", "said"), [("x", "'x' is no number"), ("3", "'3' is odd")])
def test_number_flag_refuses_naming_the_value(text: str, said: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=said):
        even(text)


def test_the_runtime_folder_and_bentoml_home_default_per_port() -> None:
    env: dict[str, str] = {}
    assert share_runtime_dir(env, 3000) == default_runtime_dir(3000)
    assert env == {
        "STAGESERVE_RUNTIME_DIR": default_runtime_dir(3000),
        "BENTOML_HOME": os.path.join(default_runtime_dir(3000), "bentoml"),
    }


def test_the_users_folders_are_kept() -> None:
    env = {"STAGESERVE_RUNTIME_DIR": "/run/gw", "BENTOML_HOME": "/home/b"}
    assert share_runtime_dir(env, 3000) == "/run/gw"
    assert env == {"STAGESERVE_RUNTIME_DIR": "/run/gw", "BENTOML_HOME": "/home/b"}
    only_runtime = {"STAGESERVE_RUNTIME_DIR": "/run/gw"}
    share_runtime_dir(only_runtime, 3000)
    assert only_runtime["BENTOML_HOME"] == "/run/gw/bentoml"
