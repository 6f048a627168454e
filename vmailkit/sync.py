"""Check incoming mail and download it: the pipeline server → parse → store.

* :func:`check` lists the headers of new messages in every account a user subscribes to, newest
  first; an account that fails gets its own error while the others still list.
* :func:`download` downloads picked messages (or all new ones) chunk by chunk; each chunk is written
  in one transaction together with the watermark, so a crash or a dropped connection loses nothing
  already reported done and running again completes the rest.

"New" follows the reference product: for IMAP, per user, account and folder the biggest downloaded
UID is kept (valid for one UIDVALIDITY) and only UIDs above it are listed; for POP3, the set of UIDLs
the user downloaded is kept.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import pandas as pd

from .accounts import Account
from .errors import MailServerError, NotFoundError, SecretError, ValidationError, VmailkitError
from .parse import parse_headers
from .pipeline import Preparer, PreparedChunk
from .secrets import resolve_secret
from .store import ChunkResult, Store
from .store.db import Lease
from .transport import DEFAULT_TIMEOUT, ImapSession, Pop3Session, open_session

Progress = Callable[[int, int], None]
#: Called after each stored chunk with the store and the new mail ids; returns how many links it made.
AfterChunk = Callable[[Store, list[int]], int]

CHECK_COLUMNS = [
    "account", "protocol", "folder", "uidvalidity", "uid", "from_address", "from_name", "to", "subject",
    "date", "size", "has_attachments", "already_downloaded", "message_id",
]


@dataclass
class AccountStatus:
    """How one account fared in a check or download."""

    account: str
    ok: bool = True
    error: str | None = None
    reason: str | None = None          # host, tls, starttls, auth, protocol, timeout, secret
    listed: int = 0


@dataclass
class CheckResult:
    """The headers of new messages (a DataFrame, newest first) and one status per account."""

    messages: pd.DataFrame
    statuses: list[AccountStatus]

    @property
    def errors(self) -> list[AccountStatus]:
        """The accounts that failed."""
        return [s for s in self.statuses if not s.ok]

    def to_json_dict(self) -> dict[str, list[dict[str, object]]]:
        """The CLI's JSON shape: ``{"messages": [...], "errors": [{"account", "error"}]}``."""
        rows = []
        for r in self.messages.itertuples(index=False):
            rows.append({
                "account": r.account, "folder": r.folder, "uid": r.uid,
                "from": r.from_address, "subject": r.subject,
                "date": None if pd.isna(r.date) else pd.Timestamp(r.date).isoformat(),
                "size": int(r.size), "has_attachments": bool(r.has_attachments),
                "already_downloaded": bool(r.already_downloaded),
            })
        return {"messages": rows, "errors": [{"account": s.account, "error": s.error} for s in self.errors]}


@dataclass
class AccountDownload:
    """What a download did in one account."""

    account: str
    selected: int = 0
    downloaded: int = 0          # mails stored for the first time
    already_present: int = 0     # received again but already stored (other account, folder or user)
    failed: int = 0              # selected but not stored because of an error
    parse_errors: int = 0        # stored with raw bytes and a parse error
    auto_linked: int = 0
    error: str | None = None
    reason: str | None = None


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
        """True when no account failed."""
        return all(a.error is None for a in self.accounts)

    def frame(self) -> pd.DataFrame:
        """The summary as a DataFrame, one row per account."""
        return pd.DataFrame([asdict(a) for a in self.accounts], columns=list(AccountDownload.__dataclass_fields__))


def _status_for(account: Account, exc: BaseException) -> AccountStatus:
    if isinstance(exc, MailServerError):
        return AccountStatus(account.name, ok=False, error=str(exc), reason=exc.reason)
    if isinstance(exc, SecretError):
        return AccountStatus(account.name, ok=False, error=str(exc), reason="secret")
    if isinstance(exc, VmailkitError):
        return AccountStatus(account.name, ok=False, error=str(exc), reason="error")
    return AccountStatus(account.name, ok=False, error=f"{account.name}: unexpected {type(exc).__name__}: {exc}", reason="error")


def connect(account: Account, passwords: Mapping[str, str] | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> ImapSession | Pop3Session:
    """Resolve the account's secret and return an open session (close it, or use ``with``)."""
    session = open_session(account, resolve_secret(account.name, account.secret_ref, passwords), timeout=timeout)
    session.open()
    return session


def test_account(account: Account, passwords: Mapping[str, str] | None = None, *, timeout: float = 15.0) -> str:
    """Connect and log in; return a one-line description. Raises :class:`MailServerError` or :class:`SecretError`."""
    with connect(account, passwords, timeout=timeout) as session:
        if isinstance(session, ImapSession):
            return f"OK: {account.name} ({account.protocol} {account.security}): {session.exists} messages in {session.folder}"
        return f"OK: {account.name} ({account.protocol} {account.security}): {len(session.uidls())} messages"


def _targets(store: Store, user_id: int, account: Account, session: ImapSession | Pop3Session, from_beginning: bool) -> list[str]:
    """Keys (UIDs as text, or UIDLs) that count as new for this user."""
    if isinstance(session, ImapSession):
        last = 0
        wm = store.watermark(user_id, account.account_id, session.folder)  # type: ignore[arg-type]
        if wm is not None and wm[0] == session.uidvalidity and not from_beginning:
            last = wm[1]
        return [str(u) for u in session.uids_above(last)]
    keys = session.uidls()
    if from_beginning:
        return keys
    done = store.downloaded_uidls(user_id, account.account_id)  # type: ignore[arg-type]
    return [k for k in keys if k not in done]


def _check_one(store: Store, user_id: int, account: Account, passwords: Mapping[str, str] | None,
               from_beginning: bool, timeout: float) -> tuple[list[dict[str, object]], AccountStatus]:
    rows: list[dict[str, object]] = []
    try:
        with connect(account, passwords, timeout=timeout) as session:
            keys = _targets(store, user_id, account, session, from_beginning)
            if isinstance(session, ImapSession):
                headers = list(session.headers(int(k) for k in keys))
            else:
                headers = list(session.headers(keys))
            stored = store.stored_keys(account.account_id, session.folder, session.uidvalidity, [h.key for h in headers])  # type: ignore[arg-type]
            for h in headers:
                hs = parse_headers(h.header)
                rows.append({
                    "account": account.name, "protocol": account.protocol, "folder": session.folder,
                    "uidvalidity": session.uidvalidity, "uid": h.key,
                    "from_address": hs.from_.address if hs.from_ else "",
                    "from_name": hs.from_.name if hs.from_ else "",
                    "to": ", ".join(a.address for a in hs.to if a.address),
                    "subject": hs.subject, "date": hs.date, "size": h.size,
                    "has_attachments": h.has_attachments, "already_downloaded": h.key in stored,
                    "message_id": hs.message_id,
                })
        return rows, AccountStatus(account.name, ok=True, listed=len(rows))
    except Exception as exc:  # noqa: BLE001 - one account's failure never stops the others
        return [], _status_for(account, exc)


def check(store: Store, user: str, *, from_beginning: bool = False, passwords: Mapping[str, str] | None = None,
          timeout: float = DEFAULT_TIMEOUT, max_workers: int = 4) -> CheckResult:
    """List the headers of new messages in every account ``user`` subscribes to, newest first.

    With ``from_beginning`` every message is listed, the downloaded ones flagged. The server is not
    changed. Raises :class:`NotFoundError` for an unknown user; server failures are reported per
    account in ``statuses``.
    """
    with store.session():  # one open of the file for the whole check (each open costs ~10 ms)
        return _check(store, user, from_beginning, passwords, timeout, max_workers)


def _check(store: Store, user: str, from_beginning: bool, passwords: Mapping[str, str] | None, timeout: float,
           max_workers: int) -> CheckResult:
    u = store.get_user(user)
    accounts = store.subscribed_accounts(user)

    def one(account: Account) -> tuple[list[dict[str, object]], AccountStatus]:
        return _check_one(store, u.user_id, account, passwords, from_beginning, timeout)  # type: ignore[arg-type]

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
    return CheckResult(messages=frame, statuses=[s for _, s in results])


def parse_picks(picks: Iterable[str] | pd.DataFrame | Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group picks by account: ``"ACCOUNT:UID"`` strings, (account, uid) pairs or check rows.

    Raises :class:`ValidationError` (field ``pick``) for a malformed pick.
    """
    grouped: dict[str, list[str]] = {}
    if isinstance(picks, pd.DataFrame):
        items: Iterable[tuple[str, str]] = [(str(a), str(k)) for a, k in zip(picks["account"], picks["uid"])]
    else:
        items = []
        for p in picks:
            if isinstance(p, str):
                account, sep, key = p.rpartition(":")
                if not sep or not account or not key:
                    raise ValidationError("pick", f"{p!r} is not ACCOUNT:UID")
                items.append((account, key))  # type: ignore[union-attr]
            else:
                items.append((str(p[0]), str(p[1])))  # type: ignore[union-attr]
    for account, key in items:
        keys = grouped.setdefault(account, [])
        if key not in keys:
            keys.append(key)
    return grouped


def download(
    store: Store,
    user: str,
    *,
    picks: Iterable[str] | pd.DataFrame | Iterable[tuple[str, str]] | None = None,
    all_new: bool = False,
    from_beginning: bool = False,
    passwords: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    after_chunk: AfterChunk | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> DownloadSummary:
    """Download ``picks`` (or, with ``all_new``, every new message) of ``user``'s accounts.

    Each chunk is stored in one transaction with the user's watermark. ``progress(done, total)`` is
    called after each chunk; setting ``cancel`` stops between chunks (``summary.cancelled``). An
    account that fails is reported in its entry while the others continue. Raises
    :class:`ValidationError` when neither picks nor ``all_new`` is given, or a pick names an account
    the user does not subscribe to.
    """
    if picks is None and not all_new:
        raise ValidationError("picks", "choose messages to download, or all new ones")
    u = store.get_user(user)
    subscribed = {a.name: a for a in store.subscribed_accounts(user)}
    wanted: dict[str, list[str]] | None = None
    if picks is not None:
        wanted = parse_picks(picks)
        for name in wanted:
            if name not in subscribed:
                raise ValidationError("pick", f"{user!r} does not subscribe to an account named {name!r}")
    names = list(wanted) if wanted is not None else list(subscribed)

    summary = DownloadSummary()
    plans: list[tuple[Account, AccountDownload, ImapSession | Pop3Session | None, list[str]]] = []
    try:
        for name in names:
            account = subscribed[name]
            entry = AccountDownload(account=name)
            summary.accounts.append(entry)
            try:
                session = connect(account, passwords, timeout=timeout)
            except Exception as exc:  # noqa: BLE001
                st = _status_for(account, exc)
                entry.error, entry.reason = st.error, st.reason
                entry.selected = entry.failed = len(wanted[name]) if wanted else 0
                continue
            keys = wanted[name] if wanted is not None else _targets(store, u.user_id, account, session, from_beginning)  # type: ignore[arg-type]
            entry.selected = len(keys)
            plans.append((account, entry, session, keys))
        total = sum(len(k) for _, _, _, k in plans)
        progress_state = [0, total]
        if progress:
            progress(0, total)
        with Preparer(total) as preparer, store.db.lease() as lease:
            for account, entry, session, keys in plans:
                assert session is not None
                _download_account(store, u.user_id, account, entry, session, keys, preparer, lease, summary,  # type: ignore[arg-type]
                                   progress, progress_state, cancel, after_chunk)
                if summary.cancelled:
                    break
    finally:
        for _, _, session, _ in plans:
            if session is not None:
                session.close()
    return summary


def _download_account(
    store: Store, user_id: int, account: Account, entry: AccountDownload, session: ImapSession | Pop3Session,
    keys: list[str], preparer: Preparer, lease: Lease, summary: DownloadSummary, progress: Progress | None,
    progress_state: list[int], cancel: threading.Event | None, after_chunk: AfterChunk | None,
) -> None:
    """Fetch, parse and store one account's messages; chunk k+1 is fetched while chunk k is parsed."""
    in_flight: deque[PreparedChunk] = deque()

    def write(item: PreparedChunk) -> None:
        prepared = item.result()
        lease.acquire()
        res: ChunkResult = store.save_chunk(
            user_id=user_id, account_id=account.account_id, protocol=account.protocol,  # type: ignore[arg-type]
            folder=session.folder, uidvalidity=session.uidvalidity, messages=prepared,
        )
        entry.downloaded += len(res.new_ids)
        entry.already_present += len(prepared) - len(res.new_ids)
        entry.parse_errors += len(res.parse_errors)
        summary.email_ids.extend(res.by_key[p.remote.key] for p in prepared)
        if after_chunk is not None and res.new_ids:
            entry.auto_linked += after_chunk(store, res.new_ids)
        progress_state[0] += len(prepared)
        if progress:
            progress(progress_state[0], progress_state[1])
        lease.breathe()

    try:
        chunks = iter(_fetch(session, keys))
        while True:
            if cancel is not None and cancel.is_set():
                summary.cancelled = True
                break
            chunk = next(chunks, None)
            if chunk is None:
                break
            in_flight.append(preparer.submit(chunk))
            while len(in_flight) > 1:
                write(in_flight.popleft())
        while in_flight:  # what was fetched is stored, cancelled or not
            write(in_flight.popleft())
    except Exception as exc:  # noqa: BLE001 - the other accounts continue
        st = _status_for(account, exc)
        entry.error, entry.reason = st.error, st.reason
    stored = entry.downloaded + entry.already_present
    entry.failed = 0 if summary.cancelled and entry.error is None else max(0, entry.selected - stored)


def _fetch(session: ImapSession | Pop3Session, keys: Sequence[str]):  # type: ignore[no-untyped-def]
    if isinstance(session, ImapSession):
        uids = []
        for k in keys:
            if not str(k).isdigit():
                raise ValidationError("pick", f"IMAP UID {k!r} is not a number")
            uids.append(int(k))
        return session.fetch(uids)
    return session.fetch(keys)
