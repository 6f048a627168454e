"""Parsing received mail off the main thread: worker processes for large downloads.

Parsing a message with the stdlib ``email`` package costs ~1–2 ms of pure Python; for thousands
of messages that is longer than fetching them. :class:`Preparer` parses chunks in a small process
pool (one worker per core) while the next chunk is being fetched and the previous one written, and
falls back to parsing in-process for small downloads or where processes cannot be started.

The raw bytes go to the workers through a spool file per worker and chunk (in ``/dev/shm`` when
available, else the temp folder; private to the user, deleted as soon as the chunk is parsed),
not through the pool's pipe: a pipe moves ~0.5 GB/s with a context switch every 64 KB, which
cost the main process a second per 500 MB.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path
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


def _prepare_spooled(path: str, lengths: list[int]) -> list[_Light]:
    """Worker side: parse the messages stored back to back in the spool file ``path``."""
    data = Path(path).read_bytes()
    out: list[_Light] = []
    pos = 0
    for n in lengths:
        out.append(identify(data[pos:pos + n]))
        pos += n
    return out


def _in_process(chunk: Sequence[RemoteMessage]) -> list[Prepared]:
    return [prepare(m) for m in chunk]


class PreparedChunk:
    """A chunk being parsed; :meth:`result` waits and returns the :class:`Prepared` messages.

    When the worker processes die (killed, out of memory, or a ``__main__`` script that cannot be
    imported again by them), the chunk is parsed in-process instead: a download never fails
    because of the pool.
    """

    def __init__(self, chunk: Sequence[RemoteMessage], futures: list[Future[list[_Light]]],
                 spooled: Sequence[Path] = ()) -> None:
        self.chunk = list(chunk)
        self._futures = futures
        self._spooled = list(spooled)

    def result(self) -> list[Prepared]:
        try:
            return self._collect()
        except BrokenProcessPool as exc:
            log.warning("parse workers failed (%s); parsing in-process", exc)
            return _in_process(self.chunk)
        finally:
            for path in self._spooled:
                path.unlink(missing_ok=True)

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
        self._spool: Path | None = None
        self._serial = 0
        if expected >= POOL_THRESHOLD and self.workers > 1:
            try:
                ctx = multiprocessing.get_context("forkserver")
                ctx.set_forkserver_preload(["vmailkit.pipeline"])
                self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
            except (OSError, ValueError) as exc:  # pragma: no cover - restricted environments
                log.warning("parsing in-process: worker processes unavailable (%s)", exc)
                self._pool = None
            if self._pool is not None:
                shm = "/dev/shm"
                base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
                try:
                    self._spool = Path(tempfile.mkdtemp(prefix="vmailkit-parse-", dir=base))
                except OSError:  # pragma: no cover - no writable temp folder: use the pipe
                    self._spool = None

    def __enter__(self) -> "Preparer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (pending work is cancelled)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        spool, self._spool = self._spool, None
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)

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
        spooled: list[Path] = []
        try:
            futures = [self._send(part, spooled) for part in parts if part]
        except BrokenProcessPool:
            for path in spooled:
                path.unlink(missing_ok=True)
            self.close()
            return self.submit(chunk)
        index_of = [i for i, part in enumerate(parts) if part]
        return _Reordered(chunk, futures, order, index_of, spooled)

    def _send(self, raws: list[bytes], spooled: list[Path]) -> Future[list[_Light]]:
        assert self._pool is not None
        if self._spool is not None:
            self._serial += 1
            path = self._spool / f"{self._serial}.eml-batch"
            try:
                with open(path, "wb") as f:
                    for raw in raws:
                        f.write(raw)
            except OSError as exc:  # e.g. /dev/shm full: fall back to the pipe
                log.warning("parse spool unavailable (%s); sending through the pipe", exc)
                path.unlink(missing_ok=True)
            else:
                spooled.append(path)
                return self._pool.submit(_prepare_spooled, str(path), [len(r) for r in raws])
        return self._pool.submit(_prepare_raw, raws)


class _Reordered(PreparedChunk):
    """Results from several workers put back into the chunk's order."""

    def __init__(self, chunk: Sequence[RemoteMessage], futures: list[Future[list[_Light]]], order: list[int],
                 index_of: list[int], spooled: Sequence[Path] = ()) -> None:
        super().__init__(chunk, futures, spooled)
        self._order = order
        self._index_of = index_of

    def _collect(self) -> list[Prepared]:
        results = {idx: iter(f.result()) for idx, f in zip(self._index_of, self._futures)}
        out = []
        for m, idx in zip(self.chunk, self._order):
            p, sha, key, fp = next(results[idx])
            out.append(Prepared(remote=m, parsed=p, raw_sha256=sha, dedup_key=key, fingerprint=fp))
        return out
