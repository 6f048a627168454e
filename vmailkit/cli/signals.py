"""Stopping a long command cleanly: SIGTERM (``timeout``, systemd, cron) and Ctrl-C.

Inside :func:`stop_on_signals` the first SIGTERM or SIGINT sets the yielded event, which the
download checks between chunks: what was fetched is stored and the command ends with its summary.
A second signal ends the process at once (the store's transactions keep it consistent).
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """Yield an event set by the first SIGTERM/SIGINT; the previous handlers come back on exit.

    Outside the main thread (where handlers cannot be installed) the event is never set.
    """
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if event.is_set():
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        event.set()

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield event
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
