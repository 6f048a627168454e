"""The DuckDB store: the only place SQL lives.

``Store(path)`` opens (and migrates) the database file per unit of work. Its tables are a public,
documented interface: see ``docs/schema.md``.
"""
from __future__ import annotations

import os

from .crm import CRM_TABLES, CrmLoadError, CrmMixin, CrmTable, StagedTable
from .db import Database, Keeper, default_db_path
from .directory import DirectoryMixin
from .health import HealthMixin
from .links import ENTITY_TYPES, LinksMixin, MatchResult, normalize_entity_type, normalize_targets
from .listing import EmailFilter, ListingMixin
from .mail import ChunkResult, ImportSession, MailMixin, location_key
from .outgoing import OutgoingMixin
from .records import Arrival, AttachmentRecord, Mailbox, MailRecord
from .searchdocs import SearchDocsMixin


class Store(DirectoryMixin, MailMixin, ListingMixin, CrmMixin, LinksMixin, OutgoingMixin, HealthMixin,
            SearchDocsMixin):
    """All reads and writes of vmailkit's data.

    ``Store(path, lock_timeout=60)``: ``path`` defaults to ``$VMAILKIT_DB`` or ``./vmail.duckdb``.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, lock_timeout: float = 60.0) -> None:
        self.db = Database(path, lock_timeout=lock_timeout)

    @property
    def path(self):  # type: ignore[no-untyped-def]
        """The database file."""
        return self.db.path

    def session(self):  # type: ignore[no-untyped-def]
        """Hold one connection for several calls (``with store.session(): ...``).

        Every store method opens the file per call (~10 ms) so that other processes can write in
        between; a session saves that cost for a burst of calls, at the price of holding the file.
        """
        return self.db.connect()

    def keeper(self, *, idle: float = 2.0) -> Keeper:
        """A connection kept for a panel's life: ``with keeper.use(): ...`` reuses it, and it is closed
        after ``idle`` seconds without use so that other processes can write (see :class:`Keeper`)."""
        return Keeper(self.db, idle=idle)

    def init(self) -> None:
        """Create the file and apply pending migrations."""
        with self.db.connect():
            pass

    def query(self, sql: str, params: list | None = None):  # type: ignore[no-untyped-def]
        """Run a read query for analysis and return a DataFrame (values as parameters)."""
        with self.db.connect() as con:
            return con.execute(sql, params or []).df()


__all__ = ["Store", "EmailFilter", "ChunkResult", "ImportSession", "Arrival", "AttachmentRecord", "Mailbox", "MailRecord",
           "Database", "Keeper", "default_db_path", "location_key",
           "CRM_TABLES", "CrmLoadError", "CrmTable", "StagedTable", "ENTITY_TYPES", "MatchResult",
           "normalize_entity_type", "normalize_targets"]
