"""`stageserve demo --reset` deletes only a demo registry's own files, and refuses, with
one line and nothing deleted, any folder that holds anything else (`--dir ~`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from service.cli.demo_reset import NotADemoRegistry, refusal, reset
from service.cli.main import main


def demo_folder(root: Path) -> Path:
    (root / "artifacts" / "1" / "models").mkdir(parents=True)
    (root / "artifacts" / "1" / "models" / "model.pkl").write_bytes(b"x")
    with sqlite3.connect(root / "mlflow.db") as db:
        db.execute("create table t (x)")
    return root


def test_a_demo_folder_is_emptied(tmp_path: Path) -> None:
    root = demo_folder(tmp_path / "demo-registry")
    (root / "mlflow.db-journal").write_bytes(b"")
    assert reset(root) == ["artifacts", "mlflow.db", "mlflow.db-journal"]
    assert root.is_dir() and list(root.iterdir()) == []


def test_a_missing_or_empty_folder_is_already_fresh(tmp_path: Path) -> None:
    assert reset(tmp_path / "nowhere") == []
    assert reset(tmp_path) == []


def test_a_folder_with_anything_else_is_refused_untouched(tmp_path: Path) -> None:
    home = demo_folder(tmp_path / "home")
    (home / ".bashrc").write_text("keep me")
    (home / "Documents").mkdir()
    with pytest.raises(NotADemoRegistry) as refused:
        reset(home)
    assert str(refused.value) == (
        f"--reset: {home} does not look like a demo registry (it holds .bashrc, Documents); "
        "nothing deleted"
    )
    assert sorted(p.name for p in home.iterdir()) == [
        ".bashrc",
        "Documents",
        "artifacts",
        "mlflow.db",
    ]
    assert (home / "artifacts" / "1" / "models" / "model.pkl").exists()


def test_a_database_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_text("my notes")
    with pytest.raises(NotADemoRegistry, match="is not a SQLite database"):
        reset(tmp_path)
    assert (tmp_path / "mlflow.db").read_text() == "my notes"


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADemoRegistry, match="is not a folder"):
        reset(tmp_path / "f")


def test_a_linked_artifact_root_is_unlinked_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious").write_text("x")
    root = tmp_path / "reg"
    root.mkdir()
    (root / "artifacts").symlink_to(elsewhere)
    assert reset(root) == ["artifacts"]
    assert (elsewhere / "precious").exists()


def test_many_foreign_entries_are_counted_not_listed() -> None:
    message = refusal("/home/u", ["a", "b", "c", "d", "e", "mlflow.db"], True)
    assert message == (
        "--reset: /home/u does not look like a demo registry (it holds a, b, c and 2 more); "
        "nothing deleted"
    )
    assert refusal("/r", ["mlflow.db", "artifacts", "mlflow.db-wal", "mlflow.db-shm"], True) is None


def test_the_command_refuses_a_home_with_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["demo", "--reset", "--seed-only", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"stageserve: --reset: {tmp_path} does not look like a demo registry "
        "(it holds notes.txt); nothing deleted\n"
    )
    assert (tmp_path / "notes.txt").read_text() == "keep me"
