"""Parsing in worker processes: same results as in-process, and a dead pool never fails a download."""
from __future__ import annotations

import os
import signal

from mailfactory import make_mail
from vmailkit.ingest import Preparer
from vmailkit.refs import MessageRef
from vmailkit.transport.base import RemoteMessage


def chunk(n: int, start: int = 0) -> list[RemoteMessage]:
    return [RemoteMessage(MessageRef("office", "INBOX", 1, uid=i),
                          make_mail(i, attachment=b"x" * (i % 7) * 100 if i % 2 else None))
            for i in range(start, start + n)]


def summary(arrivals):
    return [(a.key, a.mail.identity, a.mail.raw_sha256, a.mail.subject, len(a.mail.attachments), len(a.mail.raw))
            for a in arrivals]


def test_workers_give_the_same_results_in_order():
    messages = chunk(40)
    with Preparer(0) as inline:
        expected = summary(inline.submit(messages).result())
    with Preparer(10_000, workers=2) as pooled:
        assert pooled._pool is not None
        assert summary(pooled.submit(messages).result()) == expected
    assert [k for k, *_ in expected] == [m.key for m in messages]


def test_killed_workers_fall_back_to_in_process():
    with Preparer(10_000, workers=2) as pooled:
        first = pooled.submit(chunk(10)).result()
        assert len(first) == 10
        for pid in list(pooled._pool._processes):  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
        second = pooled.submit(chunk(10, start=10))
        assert summary(second.result()) == summary(Preparer(0).submit(chunk(10, start=10)).result())
        third = pooled.submit(chunk(5, start=20)).result()  # the pool is gone: parsed in-process
        assert [a.key for a in third] == [str(i) for i in range(20, 25)]
