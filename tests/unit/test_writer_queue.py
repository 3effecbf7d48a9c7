"""SQLite writers take turns in the kernel (``db.WriterQueue``), across worker processes."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
from typing import Any

from webapp.db import WriterQueue


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
