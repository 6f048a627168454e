"""The batch import: check → download → match for one user or all users, with a summary per account.

This is the library behind ``notebooks/batch_import.ipynb`` (run by papermill) and ``vmailkit batch``::

    from vmailkit.batch import run_batch

    report = run_batch("office.duckdb", user=None, tolerate_failures=True)   # every user
    print(report.to_text())                 # one row per user and account, and links by rule
    report.raise_for_failures()             # BatchFailed when an account failed

For each user (all users by name, or the one given) the subscribed accounts are checked; with
``download_all_new`` every message the check listed is downloaded, account by account, and with
``match`` each stored chunk goes through the automatic matcher (:mod:`vmailkit.match`) as it is
written. An account that fails (server, password, ...) is reported in its row while the others go
on; at the end :class:`BatchFailed` is raised unless ``tolerate_failures``.

Passwords come from the accounts' secret references (``env:``, ``keyring:``) or the in-memory
``passwords`` mapping; they are never a notebook parameter, so they never reach a notebook's file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ValidationError, VmailkitError
from .store import Store, default_db_path
from .sync import check, download

try:  # the automatic matching rules, in the order they are applied (see ``docs/matching.md``)
    from .store.links import RULES
except ImportError:  # pragma: no cover - before the matching module existed
    RULES = ("person.email", "customer.main_person", "customer.contact_email", "supplier.main_person",
             "supplier.contact_email", "reservation.booking_code")

ACCOUNT_COLUMNS = [
    "user", "account", "protocol", "listed", "downloaded", "already_present", "failed", "parse_errors",
    "links", "candidates", "error", "reason",
]
LINK_COLUMNS = ["user", "account", "rule", "links"]

#: ``notebooks/batch_import.ipynb`` in a source checkout.
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "batch_import.ipynb"

Log = Callable[[str], None]


class BatchFailed(VmailkitError):
    """One or more accounts failed in a batch run; ``report`` holds the whole :class:`BatchReport`."""

    def __init__(self, report: "BatchReport") -> None:
        self.report = report
        failed = report.failures()
        lines = [f"{r.user} / {r.account}: {r.error}" for r in failed.itertuples(index=False)]
        super().__init__(
            f"{len(failed)} account(s) failed in the batch run (tolerate_failures=False):\n  " + "\n  ".join(lines)
        )


@dataclass
class BatchReport:
    """What a batch run did.

    * ``accounts``: one row per user and account (``ACCOUNT_COLUMNS``): messages listed by the check,
      mails downloaded for the first time, already present (stored before, from any account or
      user), failed, stored with a parse error, automatic links made, reservation candidates kept
      (ambiguous numbers), and the error in plain words when the account failed.
    * ``links``: automatic links made, per user, account and rule (``LINK_COLUMNS``).
    """

    accounts: pd.DataFrame
    links: pd.DataFrame
    db_path: str = ""
    users: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    matcher: str = ""                 # "" when matching was off or not available

    # -- results -------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        """True when no account failed."""
        return self.failures().empty

    def failures(self) -> pd.DataFrame:
        """The rows of accounts that failed."""
        return self.accounts[self.accounts["error"].fillna("").astype(str) != ""]

    def total(self, column: str) -> int:
        """Sum of one column of ``accounts`` (``listed``, ``downloaded``, ``links``, ...)."""
        return int(self.accounts[column].sum()) if not self.accounts.empty else 0

    def links_by_rule(self) -> pd.DataFrame:
        """Links made: one row per rule, one column per ``user/account``, and a total."""
        labels = [f"{u}/{a}" for u, a in zip(self.accounts["user"], self.accounts["account"])]
        table = pd.DataFrame(0, index=pd.Index(list(RULES), name="rule"), columns=labels, dtype="int64")
        for r in self.links.itertuples(index=False):
            label = f"{r.user}/{r.account}"
            if r.rule not in table.index:
                table.loc[r.rule] = 0
            if label in table.columns:
                table.loc[r.rule, label] += int(r.links)
        table["total"] = table.sum(axis=1)
        return table

    def summary(self) -> pd.DataFrame:
        """The per-account table as printed: counts, links and ``ok`` or the error."""
        frame = self.accounts[["user", "account", "protocol", "listed", "downloaded", "already_present", "failed",
                               "links", "candidates"]].copy()
        frame["status"] = [("FAILED: " + str(e)) if isinstance(e, str) and e else "ok" for e in self.accounts["error"]]
        return frame

    def to_text(self) -> str:
        """The summary as plain text: accounts, then links by rule, then totals."""
        if self.accounts.empty:
            return "No user or account to import (add users, accounts and subscriptions first)."
        parts = ["Accounts", format_table(self.summary())]
        if self.matcher and (self.total("links") or self.total("candidates")):
            parts += ["", "Automatic links made, by rule", format_table(self.links_by_rule().reset_index())]
        elif self.matcher:
            parts += ["", "Automatic links made: none (no new mail, or none matched a CRM record)"]
        elif self.options.get("match"):
            parts += ["", "(no automatic matching: vmailkit.match is not available)"]
        totals = (f"Total: {self.total('listed')} listed, {self.total('downloaded')} downloaded, "
                  f"{self.total('already_present')} already present, {self.total('failed')} failed, "
                  f"{self.total('links')} links, {self.total('candidates')} candidates; "
                  f"{len(self.failures())} account(s) failed.")
        return "\n".join(parts + ["", totals])

    def raise_for_failures(self, tolerate: bool = False) -> None:
        """Raise :class:`BatchFailed` when an account failed, unless ``tolerate``."""
        if not tolerate and not self.ok:
            raise BatchFailed(self)

    # -- persistence (JSON, so that a papermill run can hand its report to the caller) ---------------
    def to_dict(self) -> dict[str, Any]:
        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return json.loads(frame.to_json(orient="records"))

        return {
            "db_path": self.db_path, "users": self.users, "options": self.options, "started_at": self.started_at,
            "finished_at": self.finished_at, "matcher": self.matcher,
            "accounts": records(self.accounts), "links": records(self.links),
        }

    def save(self, path: str | os.PathLike[str] | None) -> Path | None:
        """Write the report as JSON (no secrets: errors never carry passwords); ``None``: do nothing."""
        if path is None or str(path) == "":
            return None
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "BatchReport":
        """Read a report written by :meth:`save`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        accounts = pd.DataFrame(data["accounts"], columns=ACCOUNT_COLUMNS)
        links = pd.DataFrame(data["links"], columns=LINK_COLUMNS)
        return cls(accounts=_typed_accounts(accounts), links=_typed_links(links), db_path=data.get("db_path", ""),
                   users=list(data.get("users", [])), options=dict(data.get("options", {})),
                   started_at=data.get("started_at", ""), finished_at=data.get("finished_at", ""),
                   matcher=data.get("matcher", ""))


def format_table(frame: pd.DataFrame) -> str:
    """A DataFrame as an aligned plain-text table: text left, numbers right, two spaces apart."""
    columns = [str(c) for c in frame.columns]
    cells = [[("" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)) for v in row]
             for row in frame.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    widths = [max([len(columns[i])] + [len(r[i]) for r in cells]) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        out = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(out).rstrip()

    return "\n".join([line(columns)] + [line(r) for r in cells])


def _typed_accounts(frame: pd.DataFrame) -> pd.DataFrame:
    for col in ("listed", "downloaded", "already_present", "failed", "parse_errors", "links", "candidates"):
        frame[col] = frame[col].fillna(0).astype("int64")
    for col in ("error", "reason"):
        frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame


def _typed_links(frame: pd.DataFrame) -> pd.DataFrame:
    frame["links"] = frame["links"].fillna(0).astype("int64")
    return frame


class _Matcher:
    """The ``after_chunk`` hook: runs the automatic matcher on each stored chunk and keeps the counts."""

    def __init__(self) -> None:
        self.name = ""
        self._detailed: Callable[[Store, list[int]], Any] | None = None
        self._simple: Callable[[Store, list[int]], int] | None = None
        try:
            from . import match as match_module
        except ImportError:
            return
        self._detailed = getattr(match_module, "match_emails", None)
        self._simple = getattr(match_module, "match_new", None)
        if self._detailed is not None or self._simple is not None:
            self.name = "vmailkit.match"
        self.reset()

    def reset(self) -> None:
        self.links = 0
        self.candidates = 0
        self.by_rule: dict[str, int] = {}

    def __call__(self, store: Store, email_ids: list[int]) -> int:
        if self._detailed is not None:
            result = self._detailed(store, email_ids)
            added = int(getattr(result, "links_added", 0))
            self.candidates += int(getattr(result, "candidates_added", 0))
            for rule, n in (getattr(result, "by_rule", None) or {}).items():
                if n:
                    self.by_rule[rule] = self.by_rule.get(rule, 0) + int(n)
        else:
            assert self._simple is not None
            added = int(self._simple(store, email_ids))
            if added:
                self.by_rule["(all rules)"] = self.by_rule.get("(all rules)", 0) + added
        self.links += added
        return added


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_batch(
    db_path: str | os.PathLike[str] | None = None,
    user: str | Sequence[str] | None = None,
    *,
    from_beginning: bool = False,
    download_all_new: bool = True,
    match: bool = True,
    tolerate_failures: bool = False,
    passwords: Mapping[str, str] | None = None,
    log: Log | None = None,
    lock_timeout: float = 60.0,
) -> BatchReport:
    """Check, download and match the mail of ``user`` (a name, several names, or ``None`` for every
    user, by name) in the database ``db_path`` (``None``: ``$VMAILKIT_DB``, else ``./vmail.duckdb``).

    * ``from_beginning``: list every message on the servers, not only those above the user's
      watermark; already stored ones count as ``already_present`` and are never duplicated.
    * ``download_all_new``: download everything the check listed; ``False`` only checks.
    * ``match``: run the automatic matcher on the mails stored for the first time.
    * ``tolerate_failures``: return the report even when an account failed; otherwise raise
      :class:`BatchFailed` (carrying the report) after every account has been tried.
    * ``log``: called with one line of text per step (e.g. ``print``).

    Raises :class:`ValidationError` when the database file does not exist, and
    :class:`~vmailkit.errors.NotFoundError` for an unknown user.
    """
    path = Path(db_path) if db_path not in (None, "") else default_db_path()
    if not path.exists():
        raise ValidationError("db_path", f"{path} does not exist (create it with `vmailkit init`, or run `make demo`)")
    say = log or (lambda _line: None)
    store = Store(path, lock_timeout=lock_timeout)
    if user is None or (isinstance(user, str) and not user.strip()):
        users = [str(u) for u in store.users()["name"]]
    elif isinstance(user, (str, int)):
        users = [str(user).strip()]
    else:
        users = [str(u).strip() for u in user]
    for name in users:
        store.get_user(name)  # NotFoundError before anything is done
    matcher = _Matcher() if match else None
    if matcher is not None and not matcher.name:
        say("automatic matching is not available (vmailkit.match is missing); downloading only")
    started = _now()
    rows: list[dict[str, Any]] = []
    link_rows: list[dict[str, Any]] = []
    for name in users:
        result = check(store, name, from_beginning=from_beginning, passwords=passwords)
        protocols = {a.name: a.protocol for a in store.subscribed_accounts(name)}
        if not result.statuses:
            say(f"{name}: subscribes to no account")
        for status in result.statuses:
            row: dict[str, Any] = {
                "user": name, "account": status.account, "protocol": protocols.get(status.account, ""),
                "listed": status.listed, "downloaded": 0, "already_present": 0, "failed": 0, "parse_errors": 0,
                "links": 0, "candidates": 0, "error": status.error, "reason": status.reason,
            }
            rows.append(row)
            if not status.ok:
                say(f"{name} / {status.account}: FAILED: {status.error}")
                continue
            say(f"{name} / {status.account}: {status.listed} listed")
            if not download_all_new or status.listed == 0:
                continue
            picks = result.messages[result.messages["account"] == status.account]
            hook = None
            if matcher is not None and matcher.name:
                matcher.reset()
                hook = matcher
            summary = download(store, name, picks=picks, passwords=passwords, after_chunk=hook)
            for entry in summary.accounts:  # one: the picks name this account only
                row.update(downloaded=entry.downloaded, already_present=entry.already_present, failed=entry.failed,
                           parse_errors=entry.parse_errors, error=entry.error, reason=entry.reason)
            if hook is not None:
                row.update(links=matcher.links, candidates=matcher.candidates)  # type: ignore[union-attr]
                for rule, n in matcher.by_rule.items():  # type: ignore[union-attr]
                    link_rows.append({"user": name, "account": status.account, "rule": rule, "links": n})
            if row["error"]:
                say(f"{name} / {status.account}: FAILED: {row['error']}")
            else:
                say(f"{name} / {status.account}: {row['downloaded']} downloaded, {row['already_present']} already "
                    f"present, {row['links']} links")
    report = BatchReport(
        accounts=_typed_accounts(pd.DataFrame(rows, columns=ACCOUNT_COLUMNS)),
        links=_typed_links(pd.DataFrame(link_rows, columns=LINK_COLUMNS)),
        db_path=str(path), users=users, started_at=started, finished_at=_now(),
        options={"from_beginning": bool(from_beginning), "download_all_new": bool(download_all_new),
                 "match": bool(match), "tolerate_failures": bool(tolerate_failures)},
        matcher=matcher.name if matcher is not None else "",
    )
    report.raise_for_failures(tolerate=tolerate_failures)
    return report


# -- running the batch notebook headless ------------------------------------------------------------
def kernel_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment in which papermill's ``python3`` kernel is this Python (the venv's).

    A kernelspec ``python3`` pointing at :data:`sys.executable` is installed into ``sys.prefix``
    when missing, and ``JUPYTER_PATH`` puts it before any ``python3`` kernel of the user's own.
    """
    share = Path(sys.prefix) / "share" / "jupyter"
    spec = share / "kernels" / "python3" / "kernel.json"
    if not _kernelspec_ok(spec):
        from ipykernel.kernelspec import install

        install(prefix=sys.prefix, kernel_name="python3")
    env = dict(os.environ if base is None else base)
    env["JUPYTER_PATH"] = os.pathsep.join([str(share)] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p])
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")   # quiets a debugger warning in kernel output
    return env


def _kernelspec_ok(spec: Path) -> bool:
    try:
        argv = json.loads(spec.read_text())["argv"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(argv) and Path(argv[0]) == Path(sys.executable)


def run_notebook(
    output: str | os.PathLike[str],
    parameters: Mapping[str, Any],
    *,
    notebook: str | os.PathLike[str] = NOTEBOOK,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``notebook`` with papermill (``python -m papermill``, kernel ``python3`` = this Python).

    Values are passed with ``-p`` (``None``, booleans and numbers keep their type). Returns the
    finished process (``returncode`` non-zero when a cell raised, e.g. :class:`BatchFailed`); its
    ``stdout``/``stderr`` hold papermill's log, including the cells' printed output.
    """
    cmd = [sys.executable, "-m", "papermill", str(notebook), str(output), "-k", "python3", "--no-progress-bar",
           "--log-output", "--cwd", str(Path(notebook).resolve().parent)]
    for key, value in parameters.items():
        cmd += ["-p", key, _papermill_value(value)]
    return subprocess.run(cmd, env=kernel_env(env), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def _papermill_value(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)
