"""The DuckDB file: connections per unit of work, lock waits, transactions and migrations.

DuckDB lets one process at a time open a database file for writing. A JupyterLab user runs several
kernels and a papermill batch may run beside them, so vmailkit never keeps the file open: every unit
of work opens a connection, does its work and closes it. When another process holds the file, the
open is retried for ``lock_timeout`` seconds and then fails with :class:`StoreLockedError` naming
the holder.
"""
from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ..errors import StoreError, StoreLockedError, ValidationError
from .migrations import MIGRATIONS

DEFAULT_DB = "vmail.duckdb"


class Lease:
    """A connection held across units of work; see :meth:`Database.lease`."""

    def __init__(self, db: "Database", *, max_hold: float, pause: float) -> None:
        self.db = db
        self.max_hold = max_hold
        self.pause = pause
        self._con: duckdb.DuckDBPyConnection | None = None
        self._since = 0.0

    def acquire(self) -> None:
        """Open the file now if the lease does not hold it (waits for other processes)."""
        if self._con is None:
            self._con = self.db._hold()
            self._since = time.monotonic()

    def breathe(self) -> None:
        """Between units of work: after ``max_hold`` seconds, release the file and pause."""
        if self._con is not None and time.monotonic() - self._since >= self.max_hold:
            self.release()
            time.sleep(self.pause)

    def release(self) -> None:
        """Close the connection (a checkpoint) if held."""
        con, self._con = self._con, None
        if con is not None:
            self.db._drop(con)


#: Every keeper of this process: their connections are closed at exit, before the interpreter shuts
#: down (a DuckDB connection closed by a timer thread during shutdown aborts the process).
_KEEPERS: "weakref.WeakSet[Keeper]" = weakref.WeakSet()


def _close_keepers() -> None:
    for keeper in list(_KEEPERS):
        keeper.close()


atexit.register(_close_keepers)


class Keeper:
    """A connection kept open across bursts of use (a panel's page loads) and closed when idle.

    ``with keeper.use():`` makes every store call in that thread use the kept connection (no reopen,
    a warm cache); ``idle`` seconds after the last use the file is closed, so another process (a
    batch run, a download in another notebook) can write. Uses from several threads take turns.
    """

    def __init__(self, db: "Database", *, idle: float = 2.0) -> None:
        self.db = db
        self.idle = idle
        self._lock = threading.RLock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._timer: threading.Timer | None = None
        _KEEPERS.add(self)

    @contextmanager
    def use(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Hold the kept connection (opening it when needed) for this block."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._con is None:
                self.db.path.parent.mkdir(parents=True, exist_ok=True)
                con = self.db._open()
                if not self.db._migrated:
                    self.db._migrate(con)
                self._con = con
            previous = getattr(self.db._local, "con", None)
            self.db._local.con = self._con
            try:
                yield self._con
            finally:
                self.db._local.con = previous
                self._timer = threading.Timer(self.idle, self.close)
                self._timer.daemon = True
                self._timer.start()

    def close(self) -> None:
        """Close the kept connection now (it reopens at the next use)."""
        with self._lock:  # held while closing: the exit hook waits for a close under way
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            con, self._con = self._con, None
            if con is not None:
                con.close()

    @property
    def is_open(self) -> bool:
        """True while the connection is kept open."""
        return self._con is not None


def default_db_path() -> Path:
    """``$VMAILKIT_DB`` when set, else ``./vmail.duckdb``."""
    return Path(os.environ.get("VMAILKIT_DB") or DEFAULT_DB)


class Database:
    """A DuckDB file opened per unit of work.

    ``Database(path)`` creates the file and applies pending migrations on first use.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float = 60.0) -> None:
        if not 0 <= lock_timeout < float("inf"):  # also refuses nan
            raise ValidationError("lock_timeout", f"{lock_timeout} is not a number of seconds; give 0 or more (e.g. 60)")
        self.path = Path(path) if path is not None else default_db_path()
        self.lock_timeout = lock_timeout
        self._migrated = False
        self._local = threading.local()

    # -- connections -------------------------------------------------------------------------
    def _open(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as exc:
                text = str(exc)
                if "lock" not in text.lower():
                    raise StoreError(f"cannot open {self.path}: {text}") from None
                if time.monotonic() >= deadline:
                    holder = text.split("Conflicting lock is held in", 1)[-1].split(". See also")[0].strip()
                    raise StoreLockedError(
                        f"{self.path} is busy: another program holds it ({holder}) and did not release "
                        f"it within {self.lock_timeout:.0f} s; close that notebook kernel or batch run and retry"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a connection for one unit of work; nested calls in one thread reuse it."""
        existing = getattr(self._local, "con", None)
        if existing is not None:
            yield existing
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open()
        self._local.con = con
        try:
            if not self._migrated:
                self._migrate(con)
            yield con
        finally:
            self._local.con = None
            con.close()

    @contextmanager
    def lease(self, *, max_hold: float = 10.0, pause: float = 0.6) -> Iterator["Lease"]:
        """Hold the file across many units of work (a long download), releasing it now and then.

        Closing a DuckDB file checkpoints it, and a checkpoint rewrites the table's last, growing row
        group: closing after every chunk of a large import costs more than the import itself. Inside a
        lease the connection stays open (automatic checkpoints off) while the caller works; call
        :meth:`Lease.breathe` between units of work: once the file has been held ``max_hold``
        seconds it is closed (one checkpoint) and left free for ``pause`` seconds so that another
        process waiting for it gets its turn, then reopened at the next use.
        """
        lease = Lease(self, max_hold=max_hold, pause=pause)
        try:
            yield lease
        finally:
            lease.release()

    @contextmanager
    def atomic(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield a connection inside one transaction: committed on success, rolled back on error.

        Nested ``atomic()`` blocks join the outer transaction.
        """
        with self.connect() as con:
            if getattr(self._local, "in_tx", False):
                yield con
                return
            con.execute("BEGIN TRANSACTION")
            self._local.in_tx = True
            try:
                yield con
            except BaseException:
                self._local.in_tx = False
                con.execute("ROLLBACK")
                raise
            self._local.in_tx = False
            con.execute("COMMIT")

    def _hold(self) -> duckdb.DuckDBPyConnection:
        """Open a connection kept in this thread until :meth:`_drop` (see :class:`Lease`)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._open()
        try:
            if not self._migrated:
                self._migrate(con)
            con.execute("SET checkpoint_threshold = '1TB'")
        except BaseException:
            con.close()
            raise
        self._local.con = con
        return con

    def _drop(self, con: duckdb.DuckDBPyConnection) -> None:
        if getattr(self._local, "con", None) is con:
            self._local.con = None
        try:
            con.execute("RESET checkpoint_threshold")
        finally:
            con.close()

    # -- migrations --------------------------------------------------------------------------
    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "CREATE TABLE IF NOT EXISTS _vmailkit_migrations ("
            " name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT current_timestamp)"
        )
        done = {row[0] for row in con.execute("SELECT name FROM _vmailkit_migrations").fetchall()}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(sql)
                con.execute("INSERT INTO _vmailkit_migrations (name) VALUES (?)", [name])
            except Exception:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        self._migrated = True

    def applied_migrations(self) -> list[str]:
        """Names of the migrations recorded in the file, in order applied."""
        with self.connect() as con:
            return [r[0] for r in con.execute("SELECT name FROM _vmailkit_migrations ORDER BY applied_at, name").fetchall()]
