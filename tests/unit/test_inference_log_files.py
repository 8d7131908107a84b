"""The inference log's Parquet destination: paths and names, rotation, atomic files, and
the pump that never blocks, counts its drops and writes everything accepted at stop."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from service.inference_log.bounded_queue import BoundedQueue
from service.inference_log.file_layout import Rotation, file_name, partition_dir, temp_path
from service.inference_log.file_writer import FileWriter
from service.inference_log.log_counts import FILES, WRITE_ERROR
from service.inference_log.parquet_files import ParquetFiles
from service.inference_log.records import Row, feedback_row
from service.inference_log.row_pump import RowPump
from tests.unit.inference_log_fakes import Counts, prediction

AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def row(n: int, model: str = "diabetes", at: datetime = AT, body: bytes = b"[1]") -> Row:
    return prediction(
        request_id=f"req-{n}", model=model, at=at, body=body, output=b'{"predictions": [%d]}' % n
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def files_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "model", ["diabetes", "fraud model", "team/churn", "a=b", "100%", "modèle", "..", "x?y#z"]
)
def test_any_model_name_is_one_folder_that_pandas_and_duckdb_read_back(
    tmp_path: Path, model: str
) -> None:
    folder = partition_dir(tmp_path, model, date(2026, 11, 29))
    assert folder.parent.parent == tmp_path and folder.name == "date=2026-11-29"
    assert folder.parent.name.startswith("model=") and "/" not in folder.parent.name[6:]
    files = ParquetFiles(tmp_path, Rotation(1 << 20, 60), pid=7, started_at=0)
    files.write([row(1, model)])
    files.close_all()
    assert files_in(tmp_path)[0].parent == folder
    assert pd.read_parquet(tmp_path)["model"].astype(str).tolist() == [model]
    found = duckdb.sql(
        f"select model from read_parquet('{tmp_path}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert found == [(model,)]


def test_file_names_say_worker_start_and_sequence_and_hide_while_written() -> None:
    started = datetime(2026, 11, 29, 23, 5, 9, tzinfo=UTC).timestamp()
    name = file_name(4242, started, 7)
    assert name == "4242-20261129T230509Z-000007.parquet"
    temp = temp_path(Path("/log/model=m/date=2026-11-29") / name)
    assert temp.name == ".4242-20261129T230509Z-000007.parquet.tmp"


def test_rotation_is_due_by_size_or_by_age() -> None:
    rotation = Rotation(max_bytes=1000, max_age_s=60)
    assert not rotation.due(999, opened_at=0, now=59.9)
    assert rotation.due(1000, opened_at=0, now=1)
    assert rotation.due(0, opened_at=0, now=60)
    assert rotation.next_due_in(opened_at=0, now=45) == 15
    assert rotation.next_due_in(opened_at=0, now=75) == 0


def test_an_open_file_is_invisible_to_readers_until_it_is_complete(tmp_path: Path) -> None:
    clock = Clock()
    completed: list[tuple[Path, int]] = []
    files = ParquetFiles(
        tmp_path,
        Rotation(1 << 30, 60),
        7,
        0,
        on_file=lambda p, n: completed.append((p, n)),
        clock=clock,
    )
    files.write([row(1), row(2)])
    files.write([row(3)])  # a second row group in the same file
    (temp,) = files_in(tmp_path)
    assert temp.name.startswith(".") and temp.name.endswith(".tmp")
    assert pd.read_parquet(tmp_path).empty
    assert duckdb.sql(f"select count(*) from glob('{tmp_path}/**/*.parquet')").fetchall() == [(0,)]
    clock.now += 30
    assert files.rotate() == 30  # not due yet: 30 s to go
    clock.now += 30
    assert files.rotate() is None  # due by age: completed, nothing open
    (final,) = files_in(tmp_path)
    assert completed == [(final, 3)] and not final.name.startswith(".")
    assert pd.read_parquet(tmp_path)["request_id"].tolist() == ["req-1", "req-2", "req-3"]


def test_a_file_is_completed_at_its_size_and_the_next_one_begun(tmp_path: Path) -> None:
    files = ParquetFiles(tmp_path, Rotation(max_bytes=2000, max_age_s=3600), 7, 0)
    for n in range(20):
        files.write([row(n, body=b"x" * 300)])
    files.close_all()
    written = files_in(tmp_path)
    assert len(written) > 2 and all(p.suffix == ".parquet" for p in written)
    assert [p.name.split("-")[-1] for p in written] == [
        f"{n:06d}.parquet" for n in range(1, len(written) + 1)
    ]
    assert sorted(pd.read_parquet(tmp_path)["request_id"]) == sorted(f"req-{n}" for n in range(20))


def test_rows_go_to_their_model_and_utc_day(tmp_path: Path) -> None:
    files = ParquetFiles(tmp_path, Rotation(1 << 20, 60), 7, 0)
    late = datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)
    files.write([row(1, "a", late), row(2, "a", late + timedelta(seconds=2)), row(3, "b", late)])
    files.close_all()
    read = pd.read_parquet(tmp_path)
    placed = {(r.request_id, r.model, str(r.date)) for r in read.itertuples()}
    assert placed == {
        ("req-1", "a", "2026-11-29"),
        ("req-2", "a", "2026-11-30"),
        ("req-3", "b", "2026-11-29"),
    }


def pump(root: Path, counts: Counts, max_rows: int = 1000, max_bytes: int = 1 << 24) -> RowPump:
    files = ParquetFiles(
        root, Rotation(1 << 20, 60), 7, 0, on_file=lambda p, n: counts.file_written()
    )
    return RowPump(
        "test-files",
        FILES,
        FileWriter(files, counts),
        BoundedQueue(max_rows, max_bytes),
        counts,
        100,
        0.05,
    )


def test_stop_writes_every_accepted_row_and_completes_every_file(tmp_path: Path) -> None:
    counts = Counts()
    files = pump(tmp_path, counts)
    files.start()
    offered = [row(n, model=f"m{n % 3}") for n in range(500)]
    offered.append(
        feedback_row(request_id="req-1", at=AT, model="m1", target=None, version=None, reward=1.0)
    )
    senders = [
        threading.Thread(target=lambda part=part: [files.offer(r) for r in part])
        for part in (offered[0::2], offered[1::2])
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert files.stop(timeout_s=10)
    read = pd.read_parquet(tmp_path)
    assert sorted(read["request_id"]) == sorted(r.request_id for r in offered)  # nothing lost
    assert Counter(read["kind"]) == {"prediction": 500, "feedback": 1}
    assert (
        counts.counted["written", "prediction"] == 500
        and counts.counted["written", "feedback"] == 1
    )
    assert counts.counted["files",] == len(files_in(tmp_path))
    assert not any(p.name.startswith(".") for p in files_in(tmp_path))
    assert not files.offer(row(999))  # after the stop: refused and counted
    assert counts.counted["dropped", FILES, "stopped"] == 1


def test_a_full_queue_drops_and_counts_without_waiting(tmp_path: Path) -> None:
    counts = Counts()
    files = pump(tmp_path, counts, max_rows=5)  # not started: nothing takes rows
    assert [files.offer(row(n)) for n in range(8)] == [True] * 5 + [False] * 3
    assert counts.counted["dropped", FILES, "queue_full"] == 3
    small = pump(tmp_path / "small", Counts(), max_bytes=600)
    assert small.offer(row(1, body=b"x" * 100)) and not small.offer(row(2, body=b"x" * 300))
    assert files.stop(timeout_s=5)
    assert len(pd.read_parquet(tmp_path)) == 5  # the accepted ones, written at stop


def test_a_folder_that_cannot_be_written_counts_the_rows_as_write_errors(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log's folder should be")
    counts = Counts()
    files = pump(blocked, counts)
    files.offer(row(1))
    files.offer(row(2))
    files.stop(timeout_s=5)
    assert counts.counted["dropped", FILES, WRITE_ERROR] == 2
    assert counts.counted["written", "prediction"] == 0
