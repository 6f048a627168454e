"""The full-text index of stored mail: a tantivy index beside the DuckDB file, caught up from the store.

The store is the truth; the index only says which mails contain which words. Every index
document is one mail: ``email_id`` (a fast, stored, indexed integer) and the text fields
``subject``, ``sender`` (name and address), ``body`` (plain text and the text of the HTML part),
``attachments`` (file names) and ``compounds`` (joined spellings of hyphenated words).

What is indexed is the index's own business: the highest indexed ``email_id`` is read from the
index itself (its last commit), so a crash between the store's commit and the index's commit loses
nothing: :meth:`MailIndex.catch_up` adds what is missing. A small JSON file in the index directory
(``vmailkit-index.json``) records the format of the index and, after each commit, what it holds.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol

import tantivy

from ..errors import ValidationError, VmailkitError
from ..store.searchdocs import SearchDocsMixin, SearchDocument, SearchIdCounts
from .query import COMPOUND_FIELD, parse, to_query
from .text import ANALYZER_NAME, analyzer, clean, compound_forms, html_to_text

#: The format of the index this code writes; an index of another format must be rebuilt.
INDEX_FORMAT = "vmailkit-search-1"
#: The file, in the index directory, that records the format and what the last commit holds.
META_FILE = "vmailkit-index.json"
#: Suffix of the index directory beside the DuckDB file (``vmail.duckdb`` → ``vmail.duckdb.index/``).
INDEX_SUFFIX = ".index"


class SearchIndexError(VmailkitError):
    """The search index cannot be used or written (damaged, of another format, not writable)."""


class SearchIndexBusy(SearchIndexError):
    """Another program is writing the search index for longer than the wait allows."""


class SearchDocsReader(Protocol):
    """What the index reads from the store (:class:`vmailkit.store.searchdocs.SearchDocsMixin`)."""

    def search_documents(self, email_ids: Sequence[int]) -> list[SearchDocument]: ...
    def search_documents_after(self, after_id: int, limit: int) -> list[SearchDocument]: ...
    def iter_search_documents(self, after_id: int = 0, *, batch: int = 1000,
                              max_hold: float = 2.0) -> Iterator[list[SearchDocument]]: ...
    def search_id_counts(self, up_to: int) -> SearchIdCounts: ...
    def email_ids_between(self, low: int, high: int) -> list[int]: ...


@dataclass(frozen=True)
class SearchHits:
    """The result of a search: ``ids`` of the matching mails (all, or the first ``limit``), and
    ``total``, how many mails match in all."""

    ids: list[int]
    total: int


@dataclass(frozen=True)
class IndexStatus:
    """How the index compares with the store.

    ``stale`` is True when the index misses stored mails, holds mails the store no longer has, or
    was written in another format (``compatible`` False: run ``vmailkit index rebuild``).
    """

    path: Path
    compatible: bool
    indexed: int               # mails in the index
    highest_id: int            # highest indexed email_id (0: none)
    stored: int                # mails in the store
    stored_highest_id: int     # highest stored email_id (0: none)
    missing: int               # stored mails above highest_id (not indexed yet)
    stale: bool
    updated_at: str | None     # when the index was last committed (UTC, ISO 8601), from its JSON file

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``path`` as text)."""
        return {"path": str(self.path), "compatible": self.compatible, "indexed": self.indexed,
                "highest_id": self.highest_id, "stored": self.stored, "stored_highest_id": self.stored_highest_id,
                "missing": self.missing, "stale": self.stale, "updated_at": self.updated_at}


_READS = ("search_documents", "search_documents_after", "iter_search_documents", "search_id_counts",
          "email_ids_between")


class _DocsReader(SearchDocsMixin):
    """The reads of :class:`SearchDocsMixin` on the database of a store that does not mix it in."""

    def __init__(self, db: Any) -> None:
        self.db = db


def docs_reader(store: Any) -> SearchDocsReader:
    """``store`` when it has the reads of :class:`SearchDocsMixin`, else those reads on its ``db``."""
    if all(hasattr(store, name) for name in _READS):
        return store
    db = getattr(store, "db", None)
    if db is None:
        raise TypeError(f"{type(store).__name__} is not a vmailkit store")
    return _DocsReader(db)


def index_schema() -> tantivy.Schema:
    """The schema of :data:`INDEX_FORMAT`."""
    sb = tantivy.SchemaBuilder()
    sb.add_integer_field("email_id", stored=True, indexed=True, fast=True)
    for name in ("subject", "sender", "body", "attachments", COMPOUND_FIELD):
        sb.add_text_field(name, stored=False, tokenizer_name=ANALYZER_NAME, index_option="position")
    return sb.build()


def make_document(doc: SearchDocument) -> tantivy.Document:
    """The index document of one mail (text cleaned, HTML reduced to its text, compounds joined)."""
    d = tantivy.Document()
    d.add_integer("email_id", doc.email_id)
    texts: list[str] = []

    def add(field: str, value: str) -> None:
        if value.strip():
            d.add_text(field, value)
            texts.append(value)

    add("subject", clean(doc.subject))
    for value in (doc.from_name, doc.from_address):
        add("sender", clean(value))
    add("body", clean(doc.body_text))
    add("body", html_to_text(doc.body_html))
    for name in doc.attachment_names:
        add("attachments", clean(name))
    joined = dict.fromkeys(w for t in texts for w in compound_forms(t))
    if joined:
        d.add_text(COMPOUND_FIELD, " ".join(joined))
    return d


class MailIndex:
    """The full-text index of the mails of one store, in the directory ``path``.

    ``MailIndex(path)`` opens the index there, or creates the directory and an empty index.
    :meth:`for_store` uses ``<database file>.index/`` beside the DuckDB file. An index written in
    another format, or one that cannot be read, opens with ``compatible`` False and :attr:`problem`
    saying why: only :meth:`status` and :meth:`rebuild` (which replaces it) work on it. Raises
    :class:`SearchIndexError` when the directory or a new index cannot be created.

    Writing: tantivy lets one writer at a time work on an index (any process). Each writing method
    opens the writer with ``heap_size`` bytes of indexing memory, commits and releases it; when
    another program holds it, it waits up to ``lock_timeout`` seconds and then raises
    :class:`SearchIndexBusy`. Searches never wait; they see the last commit.
    """

    def __init__(self, path: str | os.PathLike[str], *, heap_size: int = 50_000_000,
                 lock_timeout: float = 30.0) -> None:
        if not 0 <= lock_timeout < float("inf"):
            raise ValidationError("lock_timeout", f"{lock_timeout} is not a number of seconds; give 0 or more")
        if heap_size < 15_000_000:
            raise ValidationError("heap_size", "give at least 15,000,000 bytes (tantivy's minimum per writer thread)")
        self.path = Path(path)
        self.heap_size = int(heap_size)
        self.lock_timeout = float(lock_timeout)
        self._open()

    @classmethod
    def for_store(cls, store: Any, **kwargs: Any) -> "MailIndex":
        """The index of ``store``: the directory ``<database file>.index`` beside its DuckDB file
        (``office.duckdb`` → ``office.duckdb.index/``). Keyword arguments as for :class:`MailIndex`."""
        return cls(index_path(store.path), **kwargs)

    # -- opening -----------------------------------------------------------------------------
    def _open(self) -> None:
        """Open the index in :attr:`path`, or create it; an index that cannot be used is noted in
        :attr:`problem` (``compatible`` False) so that :meth:`status` and :meth:`rebuild` still work."""
        self.problem: str | None = None
        self._index: tantivy.Index | None = None
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            exists = tantivy.Index.exists(str(self.path))
            if not exists:
                self._write_meta({"format": INDEX_FORMAT, "highest_email_id": 0, "documents": 0, "updated_at": None})
                self._index = tantivy.Index(index_schema(), path=str(self.path), reuse=True)
        except (OSError, ValueError) as exc:
            raise SearchIndexError(f"cannot create the search index {self.path}: {exc}") from None
        if exists:
            try:
                self._index = tantivy.Index.open(str(self.path))
            except (OSError, ValueError) as exc:
                self.problem = f"it cannot be read ({exc})"
            else:
                if self._read_meta().get("format") != INDEX_FORMAT:
                    self.problem = "it was written by another version of vmailkit"
        self.compatible = self.problem is None
        if self._index is not None:
            self._index.register_tokenizer(ANALYZER_NAME, analyzer())
            self.schema = self._index.schema
        else:
            self.schema = index_schema()

    def _read_meta(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write_meta(self, data: dict[str, Any]) -> None:
        tmp = self.path / f".{META_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, self.path / META_FILE)

    def _require_compatible(self) -> None:
        if not self.compatible or self._index is None:
            raise SearchIndexError(f"the search index {self.path} cannot be used: {self.problem};"
                                   " run `vmailkit index rebuild`")

    # -- reading -----------------------------------------------------------------------------
    def _searcher(self) -> tantivy.Searcher:
        assert self._index is not None
        self._index.reload()
        return self._index.searcher()

    @staticmethod
    def _summary(searcher: tantivy.Searcher) -> tuple[int, int, int]:
        """``(documents, highest email_id, sum of the email_ids)`` of what ``searcher`` sees."""
        count = searcher.num_docs
        if count == 0:
            return 0, 0, 0
        agg = searcher.aggregate(tantivy.Query.all_query(),
                                 {"top": {"max": {"field": "email_id"}}, "sum": {"sum": {"field": "email_id"}}})
        return count, int(agg["top"]["value"] or 0), int(agg["sum"]["value"] or 0)

    def search(self, text: str, limit: int | None = None, *,
               order: Literal["relevance", "newest"] = "relevance") -> SearchHits:
        """The mails matching ``text`` (syntax: :mod:`vmailkit.search.query`).

        ``ids``: all matching mails, or the first ``limit``, by ``order``: ``relevance`` (best
        first, BM25) or ``newest`` (highest ``email_id`` first). ``total``: how many match in all.
        Sees the index's last commit (call :meth:`catch_up` first for mail stored since).
        Raises :class:`ValidationError` for a bad text (field ``search``; also a phrase ending in
        ``*`` whose last word has more than 16,384 completions), ``limit`` or ``order``, and
        :class:`SearchIndexError` for an index that cannot be used.
        """
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValidationError("limit", f"{limit!r} is not a number of mails (1 or more, or None for all)")
        if order not in ("relevance", "newest"):
            raise ValidationError("order", f"unknown order {order!r}; use relevance or newest")
        clauses = parse(text)
        self._require_compatible()
        query = to_query(clauses, self.schema)
        searcher = self._searcher()
        if searcher.num_docs == 0:
            return SearchHits([], 0)

        def run(n: int) -> tantivy.SearchResult:
            try:
                if order == "newest":
                    return searcher.search(query, limit=n, count=True, order_by_field="email_id",
                                           order=tantivy.Order.Desc)
                return searcher.search(query, limit=n, count=True)
            except ValueError as exc:
                if "max expansions" in str(exc):
                    raise ValidationError("search", "a phrase ending in * matches too many words; give more letters"
                                                    " before the *") from None
                raise SearchIndexError(f"the search index {self.path} failed: {exc}") from None

        want = limit if limit is not None else searcher.num_docs
        result = run(min(want, 1000, searcher.num_docs))
        total = int(result.count or 0)
        if len(result.hits) < min(want, total):
            result = run(min(want, total))
        addresses = [address for _, address in result.hits]
        ids = [int(v) for v in searcher.fast_field_values("email_id", addresses)] if addresses else []
        return SearchHits(ids, total)

    def status(self, store: SearchDocsReader) -> IndexStatus:
        """Compare the index with ``store`` (counts and highest ids; no text is read)."""
        store = docs_reader(store)
        meta = self._read_meta()
        if self.compatible:
            indexed, highest, id_sum = self._summary(self._searcher())
        else:
            indexed, highest, id_sum = (self._searcher().num_docs if self._index is not None else 0), 0, 0
        counts = store.search_id_counts(highest)
        missing = counts.stored - counts.upto_count
        stale = (not self.compatible) or missing > 0 or (counts.upto_count, counts.upto_sum) != (indexed, id_sum)
        return IndexStatus(self.path, self.compatible, indexed, highest, counts.stored, counts.highest, missing,
                           stale, meta.get("updated_at"))

    # -- writing -----------------------------------------------------------------------------
    @contextmanager
    def _writer(self) -> Iterator[tantivy.IndexWriter]:
        """The index's writer for one operation: waits for another writer, rolls back on error,
        always releases it (after background merges end)."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                assert self._index is not None
                writer = self._index.writer(heap_size=self.heap_size, num_threads=0)
                break
            except ValueError as exc:
                if "lock" not in str(exc).lower():
                    raise SearchIndexError(f"cannot write the search index {self.path}: {exc}") from None
                if time.monotonic() >= deadline:
                    raise SearchIndexBusy(
                        f"the search index {self.path} is being written by another program (an update or a"
                        f" rebuild) and was not released within {self.lock_timeout:.0f} s; try again when it"
                        " has finished") from None
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        try:
            yield writer
        except BaseException:
            try:
                writer.rollback()
            finally:
                writer.wait_merging_threads()
            raise
        writer.wait_merging_threads()

    def _commit(self, writer: tantivy.IndexWriter) -> None:
        """Commit, then record what the index holds in the JSON file."""
        writer.commit()
        documents, highest, _ = self._summary(self._searcher())
        self._write_meta({"format": INDEX_FORMAT, "highest_email_id": highest, "documents": documents,
                          "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})

    def add(self, store: SearchDocsReader, email_ids: Sequence[int], *, batch: int = 1000) -> int:
        """(Re)index the mails ``email_ids`` from ``store``, in one commit; returns how many were indexed.

        A mail already in the index is replaced; an id the store does not have is removed from
        the index. Reads the store ``batch`` mails at a time. Raises :class:`SearchIndexBusy`,
        :class:`SearchIndexError` (index of another format).
        """
        self._require_compatible()
        store = docs_reader(store)
        ids = sorted({int(i) for i in email_ids})
        if not ids:
            return 0
        count = 0
        with self._writer() as writer:
            for start in range(0, len(ids), batch):
                part = ids[start:start + batch]
                for email_id in part:
                    writer.delete_documents_by_term("email_id", email_id)
                for doc in store.search_documents(part):
                    writer.add_document(make_document(doc))
                    count += 1
            self._commit(writer)
        return count

    def catch_up(self, store: SearchDocsReader, *, batch: int = 1000, commit_every: int = 20_000,
                 progress: Callable[[int], None] | None = None) -> int:
        """Index every stored mail not indexed yet; returns how many mails were (re)indexed.

        Cheap when nothing is missing (a count and a sum of ids on each side). Mails are stored
        with increasing ids, so the new ones are those above the highest indexed id; when the
        count or the sum of the ids up to that one differ between store and index (a mail stored
        late with a lower id, a mail deleted from the store, a lost document), the index is
        compared with the store id by id and mended. Commits every
        ``commit_every`` mails (a crash keeps what was committed). ``progress(done)`` is called
        after each batch. Raises :class:`SearchIndexBusy`, :class:`SearchIndexError`.
        """
        self._require_compatible()
        store = docs_reader(store)
        count = 0
        with self._writer() as writer:
            searcher = self._searcher()
            indexed, highest, id_sum = self._summary(searcher)
            counts = store.search_id_counts(highest)
            differs = (counts.upto_count, counts.upto_sum) != (indexed, id_sum)
            pending = 0
            if differs:
                pending = count = self._mend(store, writer, searcher, highest, batch)
            with closing(store.iter_search_documents(highest, batch=batch)) as pages:
                for docs in pages:
                    for doc in docs:
                        writer.add_document(make_document(doc))
                    count += len(docs)
                    pending += len(docs)
                    if progress is not None:
                        progress(count)
                    if pending >= commit_every:
                        self._commit(writer)
                        pending = 0
            if pending or differs:
                self._commit(writer)
        return count

    def _mend(self, store: SearchDocsReader, writer: tantivy.IndexWriter, searcher: tantivy.Searcher,
              highest: int, batch: int, window: int = 50_000) -> int:
        """Make the ids up to ``highest`` in the index those of the store, ``window`` ids at a time."""
        mended = 0
        low = 0
        while low <= highest:
            high = min(low + window, highest + 1)
            stored = store.email_ids_between(low, high)
            query = tantivy.Query.range_query(self.schema, "email_id", tantivy.FieldType.Integer, low, high - 1)
            found = searcher.search(query, limit=max(1, high - low), count=True)
            if (found.count or 0) > len(found.hits):
                found = searcher.search(query, limit=int(found.count or 0), count=True)
            addresses = [a for _, a in found.hits]
            indexed = [int(v) for v in searcher.fast_field_values("email_id", addresses)] if addresses else []
            in_index = set(indexed)
            twice = {i for i, n in Counter(indexed).items() if n > 1}
            stored_set = set(stored)
            for email_id in (in_index - stored_set) | twice:     # gone from the store, or indexed twice
                writer.delete_documents_by_term("email_id", email_id)
            redo = sorted((stored_set - in_index) | (twice & stored_set))
            for start in range(0, len(redo), batch):
                for doc in store.search_documents(redo[start:start + batch]):
                    writer.add_document(make_document(doc))
                    mended += 1
            low = high
        return mended

    def rebuild(self, store: SearchDocsReader, *, batch: int = 1000,
                progress: Callable[[int], None] | None = None) -> int:
        """Index every stored mail from scratch; returns how many were indexed.

        Reads the store ``batch`` mails at a time; the writer's memory is bounded by ``heap_size``.
        Searches see the old index until the new one is committed, at once. An index of another
        format is replaced by a new one (built beside it, then swapped in). ``progress(done)`` is
        called after each batch. Raises :class:`SearchIndexBusy`, :class:`SearchIndexError`.
        """
        store = docs_reader(store)
        if not self.compatible:
            return self._rebuild_aside(store, batch=batch, progress=progress)
        count = 0
        with self._writer() as writer:
            writer.delete_all_documents()
            with closing(store.iter_search_documents(0, batch=batch)) as pages:
                for docs in pages:
                    for doc in docs:
                        writer.add_document(make_document(doc))
                    count += len(docs)
                    if progress is not None:
                        progress(count)
            self._commit(writer)
        return count

    def _rebuild_aside(self, store: SearchDocsReader, *, batch: int,
                       progress: Callable[[int], None] | None) -> int:
        fresh = self.path.with_name(f"{self.path.name}.new-{os.getpid()}")
        old = self.path.with_name(f"{self.path.name}.old-{os.getpid()}")
        shutil.rmtree(fresh, ignore_errors=True)
        built = MailIndex(fresh, heap_size=self.heap_size, lock_timeout=self.lock_timeout)
        count = built.rebuild(store, batch=batch, progress=progress)
        del built
        try:
            os.replace(self.path, old)
            os.replace(fresh, self.path)
        except OSError as exc:
            raise SearchIndexError(f"cannot replace the search index {self.path}: {exc}") from None
        shutil.rmtree(old, ignore_errors=True)
        self._open()
        return count


def index_path(db_path: str | os.PathLike[str]) -> Path:
    """The index directory of a DuckDB file: ``<db file>.index`` beside it."""
    return Path(str(db_path) + INDEX_SUFFIX)
