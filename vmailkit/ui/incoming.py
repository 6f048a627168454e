"""The incoming-mail panel: check the subscribed accounts, pick messages, download them."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import pandas as pd

from ..errors import ValidationError
from ..refs import MessageRef
from ..sync import CheckResult, DownloadSummary, check, download
from .common import Column, Pager, Panel, PasswordBook, RowTable, Worker, default_after_chunk, esc, note

DEFAULT = "default"


def _date(value: Any) -> str:
    if value is None or pd.isna(value):
        return "(no date)"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _size(value: Any) -> str:
    try:
        n = int(value)
    except (TypeError, ValueError):
        return ""
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} B"


COLUMNS = [
    Column("date", "Date", "9.5em", _date),
    Column("account", "Account", "8em"),
    Column("sender", "From", "16em"),
    Column("subject", "Subject", "24em"),
    Column("size", "Size", "5em", _size),
    Column("attach", "Files", "3.5em", lambda v: "yes" if v else ""),
    Column("stored", "Stored", "4.5em", lambda v: "yes" if v else ""),
]


def row_key(ref: MessageRef) -> str:
    """The selection key of one listed message: its reference's text form (account, folder, UIDVALIDITY, UID/UIDL)."""
    return ref.to_text()


class IncomingPanel(Panel):
    """Get incoming mail for a user, pick messages and download them in a worker thread.

    ``IncomingPanel(store, user=None, passwords=None, after_chunk="default", page_size=25)``:
    ``passwords`` is the in-memory :class:`PasswordBook` (typed passwords go there and the password
    fields are cleared); ``after_chunk`` is the download hook (default: automatic matching when
    available; ``None`` for none). Public: :meth:`get_incoming`, :meth:`select_all`,
    :meth:`select_none`, :meth:`ask_download`, :meth:`start_download`, :meth:`picks`, :meth:`wait`;
    results in :attr:`result` (:class:`CheckResult`) and :attr:`summary` (:class:`DownloadSummary`).
    """

    def __init__(self, store: Any, user: str | None = None, *, passwords: PasswordBook | None = None,
                 after_chunk: Callable[[Any, list[int]], int] | str | None = DEFAULT, page_size: int = 25) -> None:
        super().__init__()
        self.store = store
        self.passwords = passwords if passwords is not None else PasswordBook()
        self.after_chunk = default_after_chunk() if after_chunk == DEFAULT else after_chunk
        self.result: CheckResult | None = None
        self.summary: DownloadSummary | None = None
        self.frame = pd.DataFrame(columns=["key"])
        self._filtered = self.frame

        self.user = W.Dropdown(options=[], description="User", layout=W.Layout(width="18em"))
        self.from_beginning = W.Checkbox(value=False, description="from the beginning", indent=False,
                                         layout=W.Layout(width="12em"))
        self.get_button = W.Button(description="Get incoming email", icon="inbox", button_style="primary",
                                   layout=W.Layout(width="14em"))
        self.get_button.add_class("vmk-get")
        self.password_fields: dict[str, W.Password] = {}
        self.password_box = W.VBox([])
        self.statuses = W.HTML()
        self.statuses.add_class("vmk-statuses")
        self.filter = W.Text(placeholder="filter: sender, subject or account", continuous_update=False,
                             layout=W.Layout(width="22em"))
        self.select_all_button = W.Button(description="Select all", layout=W.Layout(width="8em"))
        self.select_none_button = W.Button(description="Select none", layout=W.Layout(width="8em"))
        self.selection = W.HTML()
        self.selection.add_class("vmk-selection")
        self.table: RowTable[str] = RowTable(COLUMNS, page_size=page_size, on_select=self._selection_changed,
                                             css_class="vmk-incoming-table")
        self.pager = Pager(self._show_page, page_size=page_size)
        self.download_button = W.Button(description="Download…", icon="download", button_style="success",
                                        disabled=True, layout=W.Layout(width="12em"))
        self.download_button.add_class("vmk-download-button")
        self.confirm_text = W.HTML()
        self.confirm_button = W.Button(description="Yes, download", button_style="success")
        self.confirm_button.add_class("vmk-confirm")
        self.cancel_confirm = W.Button(description="No")
        self.confirm_box = W.HBox([self.confirm_text, self.confirm_button, self.cancel_confirm],
                                  layout=W.Layout(display="none"))
        self.worker = Worker(self)
        self.summary_html = W.HTML()
        self.summary_html.add_class("vmk-summary")

        self.widget = W.VBox([
            W.HBox([self.user, self.from_beginning, self.get_button]),
            self.password_box,
            self.worker.widget,
            self.statuses,
            W.HBox([self.filter, self.select_all_button, self.select_none_button, self.selection]),
            self.table.widget,
            self.pager.widget,
            W.HBox([self.download_button]),
            self.confirm_box,
            self.summary_html,
            self.message,
            self.log,
        ])
        self.widget.add_class("vmk-incoming-panel")

        self.user.observe(self.guard(lambda _c: self._user_changed(), "choose user"), names="value")
        self.get_button.on_click(self.guard(lambda _b: self.get_incoming(), "get incoming email"))
        self.filter.observe(self.guard(lambda _c: self.pager.go(0), "filter"), names="value")
        self.select_all_button.on_click(self.guard(lambda _b: self.select_all()))
        self.select_none_button.on_click(self.guard(lambda _b: self.select_none()))
        self.download_button.on_click(self.guard(lambda _b: self.ask_download(), "download"))
        self.confirm_button.on_click(self.guard(lambda _b: self.start_download(), "download"))
        self.cancel_confirm.on_click(lambda _b: setattr(self.confirm_box.layout, "display", "none"))

        users = list(store.users()["name"])
        self.user.options = users
        if user:
            if user in users:
                self.user.value = user
            else:
                self.report(ValidationError("user", f"no user named {user!r}; add users in the accounts notebook"))
        self._user_changed()
        self._show_page()

    # -- user and passwords ---------------------------------------------------------------------
    def _user_changed(self) -> None:
        self.password_fields = {}
        rows: list[W.Widget] = []
        if self.user.value:
            for a in self.store.subscribed_accounts(self.user.value):
                if (a.secret_ref or "prompt:") == "prompt:":
                    field = W.Password(placeholder="remembered for this session" if a.name in self.passwords else "password",
                                       layout=W.Layout(width="18em"))
                    field.add_class("vmk-password")
                    self.password_fields[a.name] = field
                    rows.append(W.HBox([W.Label(f"Password for {a.name} ({a.login})", layout=W.Layout(width="22em")), field]))
        self.password_box.children = rows

    def _take_passwords(self) -> None:
        for name, field in self.password_fields.items():
            if self.passwords.take_from(name, field):
                field.placeholder = "remembered for this session"

    # -- check ----------------------------------------------------------------------------------
    def get_incoming(self) -> None:
        """List the headers of new mail in every subscribed account (worker thread)."""
        user = self.user.value
        if not user:
            raise ValidationError("user", "choose a user (add one in the accounts notebook)")
        if not self.store.subscribed_accounts(user):
            raise ValidationError("user", f"{user} subscribes to no account yet: use the accounts notebook")
        self._take_passwords()
        from_beginning = bool(self.from_beginning.value)
        passwords = self.passwords
        self.summary_html.value = ""
        self.statuses.value = note(f"Checking the accounts of {user} …")

        def job(_progress: Any, _cancel: threading.Event) -> CheckResult:
            return check(self.store, user, from_beginning=from_beginning, passwords=passwords)

        self.worker.start(job, self._checked, label="get incoming email", cancellable=False)

    def _checked(self, result: CheckResult) -> None:
        self.result = result
        frame = result.messages.copy()
        frame["key"] = [row_key(r) for r in frame["ref"]]
        self.frame = frame
        self.table.set_selection([])
        self.statuses.value = self._status_html(result)
        self.pager.page = 0
        self._show_page()
        self.worker.status.value = note(f"{len(frame)} new message(s) listed", "ok")

    @staticmethod
    def _status_html(result: CheckResult) -> str:
        items = []
        for s in result.statuses:
            if s.ok:
                items.append(f'<li class="vmk-account-ok">{note(f"{s.account}: {s.listed} message(s)", "ok")}</li>')
            else:
                items.append(f'<li class="vmk-account-failed">{note(f"{s.account} failed ({s.reason}): {s.error}", "error")}</li>')
        return f'<ul class="vmk-account-statuses" style="margin:0">{"".join(items)}</ul>' if items else ""

    # -- table ----------------------------------------------------------------------------------
    def filtered(self) -> pd.DataFrame:
        """The listed messages matching the filter text."""
        text = (self.filter.value or "").strip().lower()
        frame = self.frame
        if not text or frame.empty:
            return frame
        hay = (frame["subject"].fillna("") + " " + frame["from_address"].fillna("") + " "
               + frame["from_name"].fillna("") + " " + frame["account"].fillna("")).str.lower()
        return frame[hay.str.contains(text, regex=False)]

    def _show_page(self) -> None:
        self._filtered = self.filtered()
        self.pager.set_total(len(self._filtered))
        page = self._filtered.iloc[self.pager.offset: self.pager.offset + self.pager.page_size]
        rows = [
            {"date": r.date, "account": r.account, "sender": (f"{r.from_name} <{r.from_address}>" if r.from_name else r.from_address),
             "subject": r.subject, "size": r.size, "attach": r.has_attachments, "stored": r.already_downloaded}
            for r in page.itertuples(index=False)
        ]
        empty = "Press “Get incoming email”." if self.result is None else "No new mail."
        self.table.show(rows, list(page["key"]) if len(page) else [], empty_text=empty)
        self._selection_changed()

    def _selection_changed(self) -> None:
        n = len(self.table.selected)
        self.selection.value = f'<span style="padding-left:.6em">{n} selected</span>'
        self.download_button.disabled = n == 0 or self.worker.busy

    def select_all(self) -> None:
        """Select every message matching the filter (on every page)."""
        self.table.set_selection(self.filtered()["key"] if not self.frame.empty else [])

    def select_none(self) -> None:
        """Clear the selection."""
        self.table.set_selection([])

    def picks(self) -> pd.DataFrame:
        """The selected rows of the check result (what a download gets)."""
        if self.frame.empty:
            return self.frame
        return self.frame[self.frame["key"].isin(list(self.table.selected))]

    # -- download -------------------------------------------------------------------------------
    def ask_download(self) -> None:
        """Show the confirmation for downloading the selected messages."""
        picks = self.picks()
        if picks.empty:
            raise ValidationError("selection", "tick the messages to download first")
        accounts = ", ".join(sorted(set(picks["account"])))
        self.confirm_text.value = note(f"Download {len(picks)} message(s) from {accounts}?", "warn")
        self.confirm_box.layout.display = ""

    def start_download(self) -> None:
        """Download the selected messages in a worker thread (progress bar, Cancel button)."""
        self.confirm_box.layout.display = "none"
        picks = self.picks()
        if picks.empty:
            raise ValidationError("selection", "tick the messages to download first")
        user = self.user.value
        self._take_passwords()
        passwords, after_chunk = self.passwords, self.after_chunk
        self.download_button.disabled = True
        self.summary_html.value = ""

        def job(progress: Callable[[int, int], None], cancel: threading.Event) -> DownloadSummary:
            return download(self.store, user, picks=picks, passwords=passwords, progress=progress, cancel=cancel,
                            after_chunk=after_chunk)

        self.worker.start(job, self._downloaded, label="download", on_finish=self._selection_changed)

    def _downloaded(self, summary: DownloadSummary) -> None:
        self.summary = summary
        self._mark_stored(self.picks())
        self.summary_html.value = self._summary_html(summary)
        self.table.set_selection([])
        self._show_page()
        self.worker.status.value = note("download cancelled" if summary.cancelled else "download finished",
                                        "warn" if summary.cancelled or not summary.ok else "ok")

    def _mark_stored(self, picks: pd.DataFrame) -> None:
        """Flag the picked rows that are now stored (asked from the store, so partial runs are exact)."""
        if picks.empty:
            return
        stored: set[str] = set()
        for (account, folder, uidvalidity), group in picks.groupby(["account", "folder", "uidvalidity"]):
            acc = self.store.get_account(account)
            keys = set(self.store.stored_keys(acc.account_id, folder, int(uidvalidity), [r.key for r in group["ref"]]))
            stored.update(row_key(r) for r in group["ref"] if r.key in keys)
        self.frame.loc[self.frame["key"].isin(stored), "already_downloaded"] = True

    @staticmethod
    def _summary_html(s: DownloadSummary) -> str:
        totals = (f"Downloaded <b>{s.total('downloaded')}</b> · already present <b>{s.total('already_present')}</b>"
                  f" · failed <b>{s.total('failed')}</b> · auto-linked <b>{s.total('auto_linked')}</b>")
        if s.total("parse_errors"):
            totals += f" · stored with parse errors <b>{s.total('parse_errors')}</b>"
        head = "<tr><th>account</th><th>selected</th><th>downloaded</th><th>already present</th><th>failed</th><th>auto-linked</th><th></th></tr>"
        rows = "".join(
            f"<tr><td>{esc(a.account)}</td><td>{a.selected}</td><td>{a.downloaded}</td><td>{a.already_present}</td>"
            f"<td>{a.failed}</td><td>{a.auto_linked}</td><td>{note(f'{a.reason}: {a.error}', 'error') if a.error else ''}</td></tr>"
            for a in s.accounts
        )
        cancelled = note("Cancelled: what was fetched before is stored; the rest can be downloaded later.", "warn") if s.cancelled else ""
        cancelled += "".join(f"<div>{note(f.describe(), 'error')}</div>" for f in s.failures)
        return (f'<div class="vmk-summary-box"><div class="vmk-summary-totals">{totals}</div>{cancelled}'
                f'<table class="vmk-summary-table">{head}{rows}</table></div>')

    def wait(self, timeout: float | None = 120) -> bool:
        """Wait for a running check or download (tests and scripted runs)."""
        return self.worker.wait(timeout)
