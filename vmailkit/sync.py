"""Check incoming mail and download it: list, pick, fetch, prepare, save.

* :func:`check` lists the headers of new messages in every account a user subscribes to, newest
  first, each with its :class:`~vmailkit.refs.MessageRef`; an account that fails gets its own error
  while the others still list.
* :func:`download` fetches exactly the picked references (or all new ones) chunk by chunk through
  the account's session (:mod:`vmailkit.transport`), turns the bytes into the store's records
  (:mod:`vmailkit.ingest`) and saves each chunk in one transaction together with the watermark, so
  a crash, a kill or a dropped connection loses and duplicates nothing; after a dropped connection
  it stores what arrived, reconnects and goes on.

"New" follows the reference product: for IMAP, per user, account and folder the biggest downloaded
UID is kept (valid for one UIDVALIDITY) and only UIDs above it are listed; for POP3, the set of UIDLs
the user downloaded is kept.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import pandas as pd

from .accounts import Account
from .errors import MailServerError, SecretError, ValidationError, VmailkitError
from .ingest import Preparer, PreparedChunk, ensure_identity_rule
from .parse import parse_headers
from .refs import MessageRef, Watermark
from .oauth import TokenStore, credential_for, token_store
from .search import MailIndex
from .store import ChunkResult, ImportSession, Mailbox, Store
from .transport import DEFAULT_TIMEOUT, Session, open_session

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
#: Called after each stored chunk with the store and the new mail ids; returns how many links it made.
AfterChunk = Callable[[Store, list[int]], int]
#: What ``download`` accepts as picks: references (objects, text or dict form), listing rows
#: (mappings with ``ref`` and ``subject``), or the rows of ``check().messages``.
Picks = Iterable[MessageRef] | Iterable[str] | Iterable[Mapping[str, object]] | pd.DataFrame

CHECK_COLUMNS = [
    "account", "protocol", "folder", "uidvalidity", "uid", "from_address", "from_name", "to", "subject",
    "date", "size", "has_attachments", "already_downloaded", "message_id", "ref",
]
#: Default number of new connections tried in a row without progress before an account gives up.
RETRIES = 3
#: Default wait before the first reconnection, doubled for each further one (at most 30 s).
RETRY_WAIT = 1.0


@dataclass
class AccountStatus:
    """How one account fared in a check or download."""

    account: str
    ok: bool = True
    error: str | None = None
    reason: str | None = None          # host, tls, starttls, auth, protocol, timeout, connection, secret
    listed: int = 0


@dataclass
class CheckResult:
    """The headers of new messages (a DataFrame, newest first) and one status per account.

    Each row's ``ref`` column holds its :class:`MessageRef`: pass rows (or refs) to :func:`download`.
    """

    messages: pd.DataFrame
    statuses: list[AccountStatus]

    @property
    def errors(self) -> list[AccountStatus]:
        """The accounts that failed."""
        return [s for s in self.statuses if not s.ok]

    def to_json_dict(self) -> dict[str, list[dict[str, object]]]:
        """The CLI's JSON shape: ``{"messages": [...], "errors": [{"account", "error"}]}``.

        Each message carries its reference twice: ``ref`` (an object) and ``pick`` (the text form
        ``download --pick`` takes); ``download --picks-from`` reads this JSON back.
        """
        rows = []
        for r in self.messages.itertuples(index=False):
            rows.append({
                "account": r.account, "folder": r.folder, "uid": r.uid,
                "from": r.from_address, "subject": r.subject,
                "date": None if pd.isna(r.date) else pd.Timestamp(r.date).isoformat(),
                "size": int(r.size), "has_attachments": bool(r.has_attachments),
                "already_downloaded": bool(r.already_downloaded),
                "ref": r.ref.to_dict(), "pick": r.ref.to_text(),
            })
        return {"messages": rows, "errors": [{"account": s.account, "error": s.error} for s in self.errors]}


@dataclass(frozen=True)
class PickFailure:
    """A message that was to be downloaded and was not stored: its reference, subject (when known), why."""

    ref: MessageRef
    reason: str
    subject: str | None = None

    def describe(self) -> str:
        """One line in plain words: which message (by subject when known) and why."""
        what = f"the message {self.subject!r}" if self.subject else f"the message {self.ref.to_text()}"
        return f"{self.ref.account}: {what} was not downloaded: {self.reason}"


@dataclass
class AccountDownload:
    """What a download did in one account."""

    account: str
    selected: int = 0
    downloaded: int = 0          # mails stored for the first time
    already_present: int = 0     # received again but already stored (other account, folder or user)
    failed: int = 0              # selected but not stored (see failures, or error)
    parse_errors: int = 0        # stored with raw bytes and a parse error
    auto_linked: int = 0
    reconnects: int = 0          # new connections after a lost one
    error: str | None = None
    reason: str | None = None
    failures: list[PickFailure] = field(default_factory=list)

    def fail(self, account: Account, exc: BaseException) -> None:
        """Record why the account stopped, in plain words (see :func:`_status_for`)."""
        st = _status_for(account, exc)
        self.error, self.reason = st.error, st.reason


@dataclass
class DownloadSummary:
    """The result of :func:`download`: one entry per account, and totals."""

    accounts: list[AccountDownload] = field(default_factory=list)
    cancelled: bool = False
    email_ids: list[int] = field(default_factory=list)   # every mail stored or found, in download order

    def total(self, name: str) -> int:
        """Sum of one counter over all accounts (``downloaded``, ``failed``, ...)."""
        return sum(int(getattr(a, name)) for a in self.accounts)

    @property
    def ok(self) -> bool:
        """True when no account failed and every selected message was stored (or cancelled)."""
        return all(a.error is None and not a.failures for a in self.accounts)

    @property
    def failures(self) -> list[PickFailure]:
        """Every message that was not stored, with its reason."""
        return [f for a in self.accounts for f in a.failures]

    def frame(self) -> pd.DataFrame:
        """The summary as a DataFrame, one row per account (``failures`` as their count)."""
        rows = []
        for a in self.accounts:
            row = asdict(a)
            row["failures"] = len(a.failures)
            rows.append(row)
        return pd.DataFrame(rows, columns=list(AccountDownload.__dataclass_fields__))


def _status_for(account: Account, exc: BaseException) -> AccountStatus:
    if isinstance(exc, MailServerError):
        return AccountStatus(account.name, ok=False, error=str(exc), reason=exc.reason)
    if isinstance(exc, SecretError):
        return AccountStatus(account.name, ok=False, error=str(exc), reason="secret")
    if isinstance(exc, VmailkitError):
        return AccountStatus(account.name, ok=False, error=str(exc), reason="error")
    return AccountStatus(account.name, ok=False, error=f"{account.name}: unexpected {type(exc).__name__}: {exc}", reason="error")


def connect(account: Account, passwords: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT,
            tokens: TokenStore | None = None) -> Session:
    """Resolve the account's password (or its OAuth2 grant from ``tokens``) and return an open session.

    Close it, or use ``with``. Raises :class:`MailServerError` subclasses (:class:`SignInExpired`
    when an OAuth2 grant is gone) and :class:`SecretError`.
    """
    session = open_session(account, credential_for(account, passwords, tokens), timeout=timeout)
    session.open()
    return session


def test_account(account: Account, passwords: Mapping[str, str] | None = None, *, timeout: float = 15.0,
                 tokens: TokenStore | None = None) -> str:
    """Connect and log in; return a one-line description. Raises :class:`MailServerError` or :class:`SecretError`."""
    with connect(account, passwords, timeout=timeout, tokens=tokens) as session:
        return f"OK: {account.name} ({account.protocol} {account.security}): {session.describe()}"


def _watermark(store: Store, user_id: int, account: Account, session: Session, from_beginning: bool) -> Watermark:
    if from_beginning:
        return Watermark.empty()
    return store.watermark(user_id, int(account.account_id or 0), session.folder)


def _default_tokens(accounts: Iterable[Account], tokens: TokenStore | None) -> TokenStore | None:
    """``tokens``, else the configured token store when an account signs in with OAuth2 (None if unusable:
    those accounts then fail one by one with the reason)."""
    if tokens is not None or not any(a.oauth is not None for a in accounts):
        return tokens
    try:
        return token_store()
    except VmailkitError:
        return None


def _grant_time(account: Account, tokens: TokenStore | None) -> datetime | None:
    """When the account's OAuth2 grant was last refreshed (None for password accounts or when unknown)."""
    if account.oauth is None or tokens is None:
        return None
    try:
        grant = tokens.load(account.name)
    except VmailkitError:
        return None
    if grant is None or grant.refreshed_at is None:
        return None
    return datetime.fromtimestamp(grant.refreshed_at, tz=timezone.utc)


def _record(store: Store, account: Account, action: str, error: str | None, tokens: TokenStore | None) -> None:
    """Keep the account's health row (never fails the check or download it reports on)."""
    try:
        store.record_health(int(account.account_id or 0), action=action, error=error,
                            grant_refreshed_at=_grant_time(account, tokens))
    except VmailkitError:  # pragma: no cover - the file is busy: health is informational
        pass


def _check_one(store: Store, user_id: int, account: Account, passwords: Mapping[str, str] | None,
               from_beginning: bool, timeout: float, tokens: TokenStore | None = None,
               ) -> tuple[list[dict[str, object]], AccountStatus]:
    rows: list[dict[str, object]] = []
    try:
        with connect(account, passwords, timeout=timeout, tokens=tokens) as session:
            refs = session.new_refs(_watermark(store, user_id, account, session, from_beginning))
            headers = list(session.headers(refs))
            stored = store.stored_keys(int(account.account_id or 0), session.folder, session.uidvalidity,
                                       [h.key for h in headers])
            for h in headers:
                hs = parse_headers(h.header)
                rows.append({
                    "account": account.name, "protocol": account.protocol, "folder": h.ref.folder,
                    "uidvalidity": h.ref.uidvalidity, "uid": h.key,
                    "from_address": hs.from_.address if hs.from_ else "",
                    "from_name": hs.from_.name if hs.from_ else "",
                    "to": ", ".join(a.address for a in hs.to if a.address),
                    "subject": hs.subject, "date": hs.date, "size": h.ref.size,
                    "has_attachments": h.has_attachments, "already_downloaded": h.key in stored,
                    "message_id": hs.message_id, "ref": h.ref,
                })
        return rows, AccountStatus(account.name, ok=True, listed=len(rows))
    except Exception as exc:  # noqa: BLE001 - one account's failure never stops the others
        return [], _status_for(account, exc)


def check(store: Store, user: str, *, from_beginning: bool = False, passwords: Mapping[str, str] | None = None,
          timeout: float = DEFAULT_TIMEOUT, max_workers: int = 4, tokens: TokenStore | None = None) -> CheckResult:
    """List the headers of new messages in every account ``user`` subscribes to, newest first.

    With ``from_beginning`` every message is listed, the downloaded ones flagged. The server is not
    changed. Raises :class:`NotFoundError` for an unknown user; server failures are reported per
    account in ``statuses``.
    """
    with store.session():  # one open of the file for the whole check (each open costs ~10 ms)
        return _check(store, user, from_beginning, passwords, timeout, max_workers, tokens)


def _check(store: Store, user: str, from_beginning: bool, passwords: Mapping[str, str] | None, timeout: float,
           max_workers: int, tokens: TokenStore | None) -> CheckResult:
    u = store.get_user(user)
    accounts = store.subscribed_accounts(user)
    tokens = _default_tokens(accounts, tokens)

    def one(account: Account) -> tuple[list[dict[str, object]], AccountStatus]:
        return _check_one(store, int(u.user_id or 0), account, passwords, from_beginning, timeout, tokens)

    results: list[tuple[list[dict[str, object]], AccountStatus]] = []
    if len(accounts) == 1:
        results = [one(accounts[0])]
    elif accounts:  # accounts are listed in parallel: one slow server does not hold up the others
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(accounts)))) as pool:
            results = list(pool.map(one, accounts))
    rows = [r for rs, _ in results for r in rs]
    frame = pd.DataFrame(rows, columns=CHECK_COLUMNS)
    if not frame.empty:
        frame["date"] = pd.to_datetime(frame["date"], utc=True)
        frame = frame.sort_values(["date", "account", "uid"], ascending=[False, True, True], na_position="last", kind="stable")
        frame = frame.reset_index(drop=True)
    else:
        frame["date"] = pd.to_datetime(frame["date"], utc=True)
    for account, (_, status) in zip(accounts, results):
        _record(store, account, "check", status.error, tokens)
    return CheckResult(messages=frame, statuses=[s for _, s in results])


def read_picks(picks: Picks) -> tuple[list[MessageRef], dict[MessageRef, str]]:
    """The references in ``picks`` (in order, without repeats) and the subjects known for them.

    ``picks`` are :class:`MessageRef` objects, their text or dict forms, listing rows (mappings with
    ``ref`` and ``subject``) or rows of ``check().messages`` (their ``ref`` column). Raises
    :class:`ValidationError` (field ``pick``).
    """
    subjects: dict[MessageRef, str] = {}
    if isinstance(picks, pd.DataFrame):
        if "ref" not in picks.columns:
            raise ValidationError("pick", "these rows carry no message reference: pass rows of the listing of new mail")
        refs = [MessageRef.coerce(r) for r in picks["ref"]]
        if "subject" in picks.columns:
            subjects = {r: str(s) for r, s in zip(refs, picks["subject"]) if isinstance(s, str)}
    else:
        refs = []
        for p in picks:
            if isinstance(p, Mapping) and "ref" in p:  # a listing row: its reference and subject
                ref = MessageRef.coerce(p["ref"])
                if isinstance(p.get("subject"), str):
                    subjects[ref] = p["subject"]
            else:
                ref = MessageRef.coerce(p)
            refs.append(ref)
    return list(dict.fromkeys(refs)), subjects


@dataclass
class _Plan:
    """One account's part of a download."""

    account: Account
    entry: AccountDownload
    session: Session | None
    refs: list[MessageRef]


def download(
    store: Store,
    user: str,
    *,
    picks: Picks | None = None,
    all_new: bool = False,
    from_beginning: bool = False,
    passwords: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    after_chunk: AfterChunk | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = RETRIES,
    retry_wait: float = RETRY_WAIT,
    tokens: TokenStore | None = None,
) -> DownloadSummary:
    """Download ``picks`` (or, with ``all_new``, every new message) of ``user``'s accounts.

    A pick is fetched only where it was listed: a folder recreated since (another UIDVALIDITY) or a
    message gone from the server fails that pick in plain words (``entry.failures``) while the
    others go on. Each chunk is stored in one transaction with the user's watermark, which never
    moves past a message that was not stored. When the connection drops, what arrived complete is
    stored first; then the account reconnects (waiting ``retry_wait`` seconds, doubling, at most
    30 s) and goes on where it stopped: up to ``retries`` new connections in a row that store
    nothing (progress starts the count again; ``retries=0``: never reconnect).
    ``progress(done, total)`` is called after each chunk; setting ``cancel`` stops between chunks
    (``summary.cancelled``). An account that fails is reported in its entry while the others
    continue. Raises :class:`ValidationError` when neither picks nor ``all_new`` is given, for a
    malformed pick, a pick of an account the user does not subscribe to, or a negative ``retries``.
    """
    if picks is None and not all_new:
        raise ValidationError("picks", "choose messages to download, or all new ones")
    if retries < 0 or not retry_wait >= 0:
        raise ValidationError("retries", "the number of retries and the wait between them cannot be negative")
    u = store.get_user(user)
    user_id = int(u.user_id or 0)
    subscribed = {a.name: a for a in store.subscribed_accounts(user)}
    wanted: dict[str, list[MessageRef]] | None = None
    subjects: dict[MessageRef, str] = {}
    if picks is not None:
        refs, subjects = read_picks(picks)
        wanted = {}
        for ref in refs:
            if ref.account not in subscribed:
                raise ValidationError("pick", f"{user} does not subscribe to an account named {ref.account}")
            wanted.setdefault(ref.account, []).append(ref)
    names = list(wanted) if wanted is not None else list(subscribed)
    tokens = _default_tokens([subscribed[n] for n in names], tokens)

    summary = DownloadSummary()
    plans: list[_Plan] = []
    try:
        for name in names:
            account = subscribed[name]
            entry = AccountDownload(account=name)
            summary.accounts.append(entry)
            try:
                session = connect(account, passwords, timeout=timeout, tokens=tokens)
            except Exception as exc:  # noqa: BLE001
                entry.fail(account, exc)
                entry.selected = entry.failed = len(wanted[name]) if wanted else 0
                _record(store, account, "download", entry.error, tokens)
                continue
            plan = _Plan(account, entry, session, [])
            plans.append(plan)
            try:
                plan.refs = wanted[name] if wanted is not None else session.new_refs(
                    _watermark(store, user_id, account, session, from_beginning))
            except Exception as exc:  # noqa: BLE001
                entry.fail(account, exc)
            entry.selected = len(plan.refs)
        run = _Run(store, preparer=None, importer=None, summary=summary, subjects=subjects, progress=progress,
                   cancel=cancel, after_chunk=after_chunk, passwords=passwords, timeout=timeout, retries=retries,
                   retry_wait=retry_wait, total=sum(len(p.refs) for p in plans if p.entry.error is None),
                   tokens=tokens)
        if progress:
            progress(0, run.total)
        ensure_identity_rule(store)
        with Preparer(run.total) as preparer, store.importing(user_id) as importer:
            run.preparer, run.importer = preparer, importer
            for plan in plans:
                if plan.entry.error is None:
                    run.account(plan)
                _record(store, plan.account, "download", plan.entry.error, tokens)
                if summary.cancelled:
                    break
    finally:
        for plan in plans:
            if plan.session is not None:
                plan.session.close()
    return summary


@dataclass
class _Run:
    """The state of one download: the loop a person would describe, per account."""

    store: Store
    preparer: Preparer | None
    importer: ImportSession | None
    summary: DownloadSummary
    subjects: dict[MessageRef, str]
    progress: Progress | None
    cancel: threading.Event | None
    after_chunk: AfterChunk | None
    passwords: Mapping[str, str] | None
    timeout: float
    retries: int
    retry_wait: float
    total: int
    tokens: TokenStore | None = None
    index: MailIndex | None = None
    done: int = 0

    def cancelled(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            self.summary.cancelled = True
        return self.summary.cancelled

    def account(self, plan: _Plan) -> None:
        """Fetch, prepare and save one account's messages; reconnect after a lost connection."""
        entry = plan.entry
        unsaved = {r: None for r in plan.refs}   # planned and not stored yet, in order
        failed: list[MessageRef] = []
        stalls = 0
        while unsaved and not self.cancelled():
            if plan.session is None:
                if stalls > self.retries:
                    break
                wait = min(30.0, self.retry_wait * 2 ** max(0, stalls - 1))
                if self.cancel is not None:
                    if self.cancel.wait(wait):
                        continue
                else:
                    time.sleep(wait)
                try:
                    plan.session = connect(plan.account, self.passwords, timeout=self.timeout, tokens=self.tokens)
                    entry.reconnects += 1
                except Exception as exc:  # noqa: BLE001
                    entry.fail(plan.account, exc)
                    if isinstance(exc, MailServerError) and exc.retryable:
                        stalls += 1
                        continue
                    break
            before = entry.downloaded + entry.already_present
            try:
                lost = self._fetch(plan, unsaved, failed)
            except Exception as exc:  # noqa: BLE001 - the other accounts continue
                entry.fail(plan.account, exc)
                break
            if lost is None:
                entry.error = entry.reason = None
                break
            entry.fail(plan.account, lost)
            if not lost.retryable:
                break
            # the connection broke: what arrived is stored; try again on a new one
            plan.session.close()
            plan.session = None
            if self.retries == 0:
                break
            stalls = 0 if entry.downloaded + entry.already_present > before else stalls + 1
        if self.summary.cancelled and entry.error is None:
            entry.failed = len(failed)
        else:
            entry.failed = len(failed) + len(unsaved)

    def _fetch(self, plan: _Plan, unsaved: dict[MessageRef, None], failed: list[MessageRef]) -> MailServerError | None:
        """One connection's worth: fetch what is unsaved, store it; the lost connection's error, or None."""
        assert plan.session is not None and self.preparer is not None
        session = plan.session
        mailbox = Mailbox(int(plan.account.account_id or 0), plan.account.protocol, session.folder, session.uidvalidity)
        in_flight: deque[PreparedChunk] = deque()
        lost: MailServerError | None = None
        chunks = session.fetch(list(unsaved))
        while True:
            try:
                chunk = next(chunks, None)
            except MailServerError:
                while in_flight:  # what was fetched is stored before the error is reported
                    self._save(plan, mailbox, in_flight.popleft(), unsaved, failed)
                raise
            if chunk is None:
                break
            for f in chunk.failures:
                plan.entry.failures.append(PickFailure(f.ref, f.reason, self.subjects.get(f.ref)))
                failed.append(f.ref)
                unsaved.pop(f.ref, None)
                self.done += 1
            if chunk.messages:
                in_flight.append(self.preparer.submit(chunk.messages))
            while len(in_flight) > 1:
                self._save(plan, mailbox, in_flight.popleft(), unsaved, failed)
            if chunk.interrupted is not None:
                lost = chunk.interrupted
                break
            if self.cancelled():
                break
        while in_flight:  # what was fetched is stored, cancelled or cut off
            self._save(plan, mailbox, in_flight.popleft(), unsaved, failed)
        if lost is None and unsaved and not self.summary.cancelled:
            for ref in list(unsaved):  # a transport that forgot one: never silently
                plan.entry.failures.append(PickFailure(ref, "the server did not send it", self.subjects.get(ref)))
                failed.append(ref)
                unsaved.pop(ref)
        return lost

    def _index(self, email_ids: list[int]) -> None:
        """Make newly stored mail searchable at once. The store stays the truth: when the index cannot
        be written now (another process holds it), the next search or ``vmailkit index update``
        catches up, so the download goes on."""
        try:
            if self.index is None:
                self.index = MailIndex.for_store(self.store)
            self.index.add(self.store, email_ids)
        except VmailkitError as exc:
            log.warning("new mail not indexed yet (%s); the next search catches up", exc)

    def _save(self, plan: _Plan, mailbox: Mailbox, item: PreparedChunk, unsaved: dict[MessageRef, None],
              failed: list[MessageRef]) -> None:
        """Store one prepared chunk; the watermark stops before any message not stored."""
        assert self.importer is not None
        entry = plan.entry
        arrivals = item.result()
        refs = [m.ref for m in item.chunk]
        in_chunk = set(refs)
        pending_uids = [r.uid for r in (*unsaved, *failed) if r.uid is not None and r not in in_chunk
                        and r.folder == mailbox.folder and r.uidvalidity == mailbox.uidvalidity]
        cap = min(pending_uids) - 1 if pending_uids else None
        res: ChunkResult = self.importer.save(mailbox, arrivals, watermark_cap=cap)
        for ref in refs:
            unsaved.pop(ref, None)
        entry.downloaded += len(res.new_ids)
        entry.already_present += len(arrivals) - len(res.new_ids)
        entry.parse_errors += len(res.parse_errors)
        self.summary.email_ids.extend(res.by_key[a.key] for a in arrivals)
        if res.new_ids:
            self._index(res.new_ids)
        if self.after_chunk is not None and res.new_ids:
            entry.auto_linked += self.after_chunk(self.store, res.new_ids)
        self.done += len(arrivals)
        if self.progress:
            self.progress(min(self.done, self.total), self.total)
