"""Parsing received mail off the main thread: worker processes for large downloads.

Parsing a message with the stdlib ``email`` package costs ~1–2 ms of pure Python; for thousands
of messages that is longer than fetching them. :class:`Preparer` parses chunks in a small process
pool (one worker per core, at most four) while the next chunk is being fetched and the previous one
written, and parses in-process for small downloads or where processes cannot be started.

The workers never outlive the process that started them: each watches its parent (a pidfd where
the kernel has them, else a poll every half second) and ends when it is gone, however it ended
(SIGKILL included). The forkserver ends on its own when its parent is gone, and the resource
tracker when the last of them has closed its pipe. Workers ignore SIGINT: Ctrl-C in a terminal
reaches the whole process group, and it is the parent that decides to stop between chunks.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..store.records import Arrival, MailRecord
from ..transport.base import RemoteMessage
from .prepare import arrival, mail_record

log = logging.getLogger(__name__)

#: Below this many messages a download parses in-process (starting workers costs ~0.5 s).
POOL_THRESHOLD = 200


def _records(raws: list[bytes]) -> list[MailRecord]:
    """Worker side: parse and identify raw messages (the bytes are not sent back)."""
    return [mail_record(raw, keep_raw=False) for raw in raws]


def _wait_for_exit(pid: int) -> None:
    """Return when process ``pid`` has ended."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd here: poll
        while True:
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                continue
    try:
        select.select([fd], [], [])  # readable once the process has ended
    finally:
        os.close(fd)


def _worker_start(parent: int) -> None:
    """Worker initializer: ignore Ctrl-C, and end as soon as ``parent`` is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        _wait_for_exit(parent)
        os._exit(0)

    threading.Thread(target=watch, name="vmailkit-parent-watch", daemon=True).start()


def _in_process(chunk: Sequence[RemoteMessage]) -> list[Arrival]:
    return [arrival(m) for m in chunk]


class PreparedChunk:
    """A chunk being parsed; :meth:`result` waits and returns the store's records in the chunk's order.

    When the worker processes die (killed, out of memory, or a ``__main__`` script that cannot be
    imported again by them), the chunk is parsed in-process instead: a download never fails
    because of the pool.
    """

    def __init__(self, chunk: Sequence[RemoteMessage], futures: list[Future[list[MailRecord]]],
                 order: list[int] | None = None, index_of: list[int] | None = None) -> None:
        self.chunk = list(chunk)
        self._futures = futures
        self._order = order
        self._index_of = index_of

    def result(self) -> list[Arrival]:
        """The records (waits for the workers); never fails because of the pool."""
        try:
            return self._collect()
        except BrokenProcessPool as exc:
            log.warning("parse workers failed (%s); parsing in-process", exc)
            return _in_process(self.chunk)

    def _collect(self) -> list[Arrival]:
        if self._order is None or self._index_of is None:
            records = [r for f in self._futures for r in f.result()]
            return [arrival(m, r) for m, r in zip(self.chunk, records)]
        results = {idx: iter(f.result()) for idx, f in zip(self._index_of, self._futures)}
        return [arrival(m, next(results[idx])) for m, idx in zip(self.chunk, self._order)]


class Preparer:
    """Parses chunks, in worker processes when ``expected`` messages make it worthwhile.

    Use as a context manager; the pool is shut down on exit.
    """

    def __init__(self, expected: int, *, workers: int | None = None) -> None:
        self.workers = max(1, workers or min(4, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        if expected >= POOL_THRESHOLD and self.workers > 1:
            try:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["vmailkit.ingest.pool"])
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx,
                                                 initializer=_worker_start, initargs=(os.getpid(),))
            except (OSError, ValueError) as exc:  # pragma: no cover - restricted environments
                log.warning("parsing in-process: worker processes unavailable (%s)", exc)
                self._pool = None

    def __enter__(self) -> "Preparer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (pending work is cancelled)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, chunk: Sequence[RemoteMessage]) -> PreparedChunk:
        """Start parsing ``chunk``; the result keeps the chunk's order."""
        raws = [m.raw for m in chunk]
        if self._pool is not None and getattr(self._pool, "_broken", False):
            self.close()  # a dead pool stays dead: parse the rest in-process
        if self._pool is None or len(raws) < 2:
            done: Future[list[MailRecord]] = Future()
            done.set_result(_records(raws))
            return PreparedChunk(chunk, [done])
        # split by size so that every worker gets a similar share of bytes
        parts: list[list[bytes]] = [[] for _ in range(self.workers)]
        sizes = [0] * self.workers
        order: list[int] = []
        for raw in raws:
            i = sizes.index(min(sizes))
            parts[i].append(raw)
            sizes[i] += len(raw)
            order.append(i)
        try:
            futures = [self._pool.submit(_records, part) for part in parts if part]
        except BrokenProcessPool:
            self.close()
            return self.submit(chunk)
        return PreparedChunk(chunk, futures, order, [i for i, part in enumerate(parts) if part])
