"""SQLite's hot-path writers: turns in the kernel (``db.WriterQueue``) and a kept connection per
thread (``db.KeptConnections``), across threads, forks and ``dispose()``."""

from __future__ import annotations

import fcntl
import gc
import multiprocessing
import os
import sqlite3
import threading
import weakref
from typing import Any

import pytest

from webapp.db import KeptConnections, WriterQueue


def _try_the_turn(queue: WriterQueue, result: Any) -> None:
    try:
        fcntl.flock(queue._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        result.value = 0
    else:
        result.value = 1


def test_writers_of_one_file_take_turns_across_processes(tmp_path):
    queue = WriterQueue(str(tmp_path / "db-writers"))
    fork = multiprocessing.get_context("fork")

    def other_process_gets_the_turn() -> bool:
        result = fork.Value("i", -1)
        # The child inherits ``queue`` as it is, descriptor included: it must open its own.
        child = fork.Process(target=_try_the_turn, args=(queue, result))
        child.start()
        child.join()
        assert child.exitcode == 0
        return bool(result.value)

    with queue.turn():
        assert not other_process_gets_the_turn()
        assert queue._pid == os.getpid()
    assert other_process_gets_the_turn()


def _engine(tmp_path: Any) -> Any:
    from webapp.db import make_engine

    return make_engine(f"sqlite:///{tmp_path / 'kept.db'}")


def test_a_thread_keeps_its_connection_until_dispose(tmp_path):
    engine = _engine(tmp_path)
    kept = KeptConnections(engine)
    first = kept.get()
    assert kept.get() is first
    assert first.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # made by the engine
    engine.dispose()
    with pytest.raises(sqlite3.ProgrammingError):
        first.execute("SELECT 1")  # closed
    second = kept.get()
    assert second is not first and second.execute("SELECT 1").fetchone() == (1,)
    engine.dispose()


def test_each_thread_has_its_own_and_lets_it_go_at_the_end(tmp_path):
    engine = _engine(tmp_path)
    kept = KeptConnections(engine)
    mine = kept.get()
    seen: list[Any] = []

    def use() -> None:
        seen.append(id(kept.get()))
        seen.append(weakref.ref(kept._local.held))

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert seen and seen[0] != id(mine)
    gc.collect()
    assert seen[1]() is None  # the ended thread's holder, the connection's only owner, is gone
    engine.dispose()


def test_dispose_on_another_thread_leaves_a_running_thread_its_connection(tmp_path):
    """``dispose()`` may run on any thread (a test, a reconfigured app) while a request is
    mid-statement on its kept connection: that connection stays open until its own thread
    asks again, and then it is closed and replaced."""
    engine = _engine(tmp_path)
    kept = KeptConnections(engine)
    in_use = threading.Event()
    disposed = threading.Event()
    result: dict[str, Any] = {}

    def request() -> None:
        conn = kept.get()
        in_use.set()
        disposed.wait(10)
        result["still_open"] = conn.execute("SELECT 1").fetchone() == (1,)
        fresh = kept.get()
        result["replaced"] = fresh is not conn
        try:
            conn.execute("SELECT 1")
        except sqlite3.ProgrammingError:
            result["old_closed"] = True

    thread = threading.Thread(target=request)
    thread.start()
    in_use.wait(10)
    engine.dispose()
    disposed.set()
    thread.join()
    assert result == {"still_open": True, "replaced": True, "old_closed": True}
    engine.dispose()


def _child_connection(kept: KeptConnections, result: Any) -> None:
    parent = kept._local.held
    conn = kept.get()
    result.value = int(conn is not parent.conn and parent in kept._inherited)


def test_a_forked_child_makes_its_own_and_leaves_the_parents_alone(tmp_path):
    engine = _engine(tmp_path)
    kept = KeptConnections(engine)
    parent = kept.get()
    fork = multiprocessing.get_context("fork")
    result = fork.Value("i", -1)
    child = fork.Process(target=_child_connection, args=(kept, result))
    child.start()
    child.join()
    assert child.exitcode == 0 and result.value == 1
    assert parent.execute("SELECT 1").fetchone() == (1,)  # still open here
    engine.dispose()


def test_the_wal_starts_over_at_its_size_limit(tmp_path):
    """Writers taking turns let each checkpoint finish, so the WAL file never outgrows the limit
    (``WAL_PAGES``), however many commits go through it."""
    from webapp.db import WAL_PAGES

    engine = _engine(tmp_path)
    kept = KeptConnections(engine)
    queue = WriterQueue(str(tmp_path / "kept.db-writers"))
    conn = kept.get()
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_PAGES
    conn.execute("CREATE TABLE t (x INTEGER)")
    for i in range(WAL_PAGES + WAL_PAGES // 2):  # one page a commit: past the limit
        with queue.turn():
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            conn.commit()
    frames = (os.path.getsize(tmp_path / "kept.db-wal") - 32) // (4096 + 24)
    assert WAL_PAGES // 2 < frames <= WAL_PAGES + 2
    engine.dispose()
