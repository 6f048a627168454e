"""Parsing received mail off the main thread: worker processes for large downloads.

Parsing a message with the stdlib ``email`` package costs ~1–2 ms of pure Python; for thousands
of messages that is longer than fetching them. :class:`Preparer` parses chunks in a small process
pool (one worker per core) while the next chunk is being fetched and the previous one written, and
falls back to parsing in-process for small downloads or where processes cannot be started.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .parse import ParsedMessage
from .store.mail import Prepared, identify, prepare
from .transport.base import RemoteMessage

log = logging.getLogger(__name__)

#: Below this many messages a download parses in-process (starting workers costs ~0.5 s).
POOL_THRESHOLD = 200
_Light = tuple[ParsedMessage, str, str, str]


def _prepare_raw(raws: list[bytes]) -> list[_Light]:
    """Worker side: parse and identify raw messages (the bytes are not sent back)."""
    return [identify(raw) for raw in raws]


def _in_process(chunk: Sequence[RemoteMessage]) -> list[Prepared]:
    return [prepare(m) for m in chunk]


class PreparedChunk:
    """A chunk being parsed; :meth:`result` waits and returns the :class:`Prepared` messages.

    When the worker processes die (killed, out of memory, or a ``__main__`` script that cannot be
    imported again by them), the chunk is parsed in-process instead: a download never fails
    because of the pool.
    """

    def __init__(self, chunk: Sequence[RemoteMessage], futures: list[Future[list[_Light]]]) -> None:
        self.chunk = list(chunk)
        self._futures = futures

    def result(self) -> list[Prepared]:
        try:
            return self._collect()
        except BrokenProcessPool as exc:
            log.warning("parse workers failed (%s); parsing in-process", exc)
            return _in_process(self.chunk)

    def _collect(self) -> list[Prepared]:
        lights = [item for f in self._futures for item in f.result()]
        return [
            Prepared(remote=m, parsed=p, raw_sha256=sha, dedup_key=key, fingerprint=fp)
            for m, (p, sha, key, fp) in zip(self.chunk, lights)
        ]


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
                ctx.set_forkserver_preload(["vmailkit.pipeline"])
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
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
            done: Future[list[_Light]] = Future()
            done.set_result(_prepare_raw(raws))
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
            futures = [self._pool.submit(_prepare_raw, part) for part in parts if part]
        except BrokenProcessPool:
            self.close()
            return self.submit(chunk)
        index_of = [i for i, part in enumerate(parts) if part]
        return _Reordered(chunk, futures, order, index_of)


class _Reordered(PreparedChunk):
    """Results from several workers put back into the chunk's order."""

    def __init__(self, chunk: Sequence[RemoteMessage], futures: list[Future[list[_Light]]], order: list[int],
                 index_of: list[int]) -> None:
        super().__init__(chunk, futures)
        self._order = order
        self._index_of = index_of

    def _collect(self) -> list[Prepared]:
        results = {idx: iter(f.result()) for idx, f in zip(self._index_of, self._futures)}
        out = []
        for m, idx in zip(self.chunk, self._order):
            p, sha, key, fp = next(results[idx])
            out.append(Prepared(remote=m, parsed=p, raw_sha256=sha, dedup_key=key, fingerprint=fp))
        return out
