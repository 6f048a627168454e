"""The mail list (paged and filtered in DuckDB) and the mail reader (safe body, attachments, status)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import ipywidgets as W
import pandas as pd

from .. import render
from ..browse import resolve_search
from ..errors import NotFoundError, ValidationError, VmailkitError
from ..store import EmailFilter
from ..store.listing import Cursor
from .common import Column, Pager, Panel, RowTable, esc, labelled, note

#: CRM record types in the order the workbench offers them, with their labels.
ENTITY_CHOICES: list[tuple[str, str]] = [
    ("Customer", "customer"), ("Supplier", "supplier"), ("Reservation", "reservation"),
    ("Quote / order", "quote"), ("Customer invoice", "invoice"), ("Product", "product"), ("Person", "person"),
]
_FILTER_FIELDS = {f.name for f in dataclasses.fields(EmailFilter)}


def _date(value: Any) -> str:
    if value is None or pd.isna(value):
        return "(no date)"
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


LIST_COLUMNS = [
    Column("date", "Date", "9.5em", _date),
    Column("sender", "From", "15em"),
    Column("subject", "Subject", "24em"),
    Column("accounts", "Account", "8em"),
    Column("status", "Status", "4.5em"),
    Column("attach", "Files", "3.5em", lambda v: "yes" if v else ""),
    Column("related", "Related", "4em", lambda v: "" if v is None or pd.isna(v) else str(int(v))),
]


def _day_start(d: date | None) -> datetime | None:
    return None if d is None else datetime.combine(d, time.min, tzinfo=timezone.utc)


#: Attachments the reader shows per page; a mail with more parts gets a page control.
ATTACHMENT_PAGE = 50
#: Page sizes offered for the attachment list (the control shows when a mail has more than the smallest).
ATTACHMENT_PAGE_SIZES = (25, 50, 100)


@dataclasses.dataclass
class _AttachmentSlot:
    """The widgets of one attachment row, made once and reused for every page and every mail."""

    label: W.HTML
    save: W.Button
    download: W.Button
    link: W.HTML
    row: W.HBox


class MailListPanel(Panel):
    """The stored mail as a paged table with filters; paging and filtering run in DuckDB.

    ``MailListPanel(store, user=None, on_open=None, page_size=25)``: ``on_open(email_id)`` is called
    by a row's Open button (give it ``reader.open``). The ticked mails are :attr:`selected_ids`
    (the linking panel works on them); listeners in :attr:`selection_listeners` hear of changes.
    Public: :meth:`refresh`, :meth:`current_filter`, :meth:`clear_filters`, :meth:`open`,
    :meth:`select_page`, :meth:`select_none`.
    """

    def __init__(self, store: Any, user: str | None = None, *, on_open: Callable[[int], None] | None = None,
                 page_size: int = 25) -> None:
        super().__init__()
        self._keeper = store.keeper()  # one connection for the panel's life, closed when idle
        self._counts: dict[EmailFilter, int] = {}
        self._resolved: dict[EmailFilter, EmailFilter] = {}
        self._cursors: dict[tuple[EmailFilter, int, int], Cursor] = {}
        self.store = store
        self.on_open = on_open
        self.selection_listeners: list[Callable[[], None]] = []
        self.page: pd.DataFrame = pd.DataFrame()

        self.status = W.Dropdown(options=[("any", ""), ("unread", "unread"), ("read", "read")], value="",
                                 layout=W.Layout(width="9em"))
        self.account = W.Dropdown(options=[("any", "")], value="", layout=W.Layout(width="14em"))
        self.user = W.Dropdown(options=[("everyone's", "")], value="", layout=W.Layout(width="14em"))
        self.since = W.DatePicker(layout=W.Layout(width="11em"))
        self.until = W.DatePicker(layout=W.Layout(width="11em"))
        self.search = W.Text(placeholder="subject, sender or text", continuous_update=False, layout=W.Layout(width="20em"))
        self.linked = W.Dropdown(options=[("any", ""), ("linked", "yes"), ("not linked", "no")], value="",
                                 layout=W.Layout(width="9em"))
        self.entity_type = W.Dropdown(options=[("any record", "")] + ENTITY_CHOICES, value="", layout=W.Layout(width="12em"))
        self.entity_id = W.Text(placeholder="id", layout=W.Layout(width="6em"))
        self.apply_button = W.Button(description="Apply", icon="filter", layout=W.Layout(width="7em"))
        self.clear_button = W.Button(description="Clear", layout=W.Layout(width="6em"))
        self.refresh_button = W.Button(description="", icon="refresh", tooltip="reload", layout=W.Layout(width="3em"))
        self.select_page_button = W.Button(description="Tick page", layout=W.Layout(width="7em"))
        self.select_none_button = W.Button(description="Untick all", layout=W.Layout(width="7em"))
        self.selection = W.HTML()
        self.selection.add_class("vmk-selection")
        self.table: RowTable[int] = RowTable(LIST_COLUMNS, page_size=page_size, action="Open",
                                             on_action=self.guard(self.open, "open mail"),
                                             on_select=self._selection_changed, css_class="vmk-mail-table")
        self.pager = Pager(self.guard(self._load_page, "list mail"), page_size=page_size)

        link_filters = {"linked", "entity_type", "entity_id"} <= _FILTER_FIELDS
        filters = W.VBox([
            W.HBox([labelled("Status", self.status, "4em"), labelled("Account", self.account, "5em"),
                    labelled("Of", self.user, "2em")]),
            W.HBox([labelled("From", self.since, "4em"), labelled("until", self.until, "3em"),
                    labelled("Text", self.search, "3em")]),
            W.HBox([labelled("Linked", self.linked, "4em"), labelled("to", self.entity_type, "2em"), self.entity_id],
                   layout=W.Layout(display="" if link_filters else "none")),
            W.HBox([self.apply_button, self.clear_button, self.refresh_button, self.select_page_button,
                    self.select_none_button, self.selection]),
        ])
        self.widget = W.VBox([filters, self.table.widget, self.pager.widget, self.message, self.log])
        self.widget.add_class("vmk-mail-list-panel")

        apply = self.guard(lambda *_: self.pager.go(0), "filter")
        for w in (self.status, self.account, self.user, self.since, self.until, self.search, self.linked, self.entity_type):
            w.observe(apply, names="value")
        self.apply_button.on_click(apply)
        self.refresh_button.on_click(self.guard(lambda _b: self.refresh(), "reload"))
        self.clear_button.on_click(self.guard(lambda _b: self.clear_filters(), "filter"))
        self.select_page_button.on_click(self.guard(lambda _b: self.select_page()))
        self.select_none_button.on_click(self.guard(lambda _b: self.select_none()))

        self._quiet = True
        try:
            self.account.options = [("any", "")] + [(a.name, a.name) for a in store.list_accounts()]
            self.user.options = [("everyone's", "")] + [(f"{u}'s accounts", u) for u in store.users()["name"]]
            if user and user in set(store.users()["name"]):
                self.user.value = user
            elif user:
                self.report(ValidationError("user", f"no user named {user!r}; showing everyone's mail"))
        finally:
            self._quiet = False
        self.refresh()

    # -- filter and page ------------------------------------------------------------------------
    def current_filter(self) -> EmailFilter:
        """The :class:`EmailFilter` the widgets describe."""
        since, until = self.since.value, self.until.value
        if since and until and until < since:
            raise ValidationError("until", "the end date is before the start date")
        kwargs: dict[str, Any] = {
            "status": self.status.value or None, "account": self.account.value or None,
            "search": self.search.value.strip() or None, "user": self.user.value or None,
            "since": _day_start(since), "until": _day_start(until + timedelta(days=1)) if until else None,
        }
        if "linked" in _FILTER_FIELDS:
            kwargs["linked"] = {"yes": True, "no": False}.get(self.linked.value)
            if self.entity_type.value:
                kwargs["entity_type"] = self.entity_type.value
                text = self.entity_id.value.strip()
                if text:
                    if not text.isdigit():
                        raise ValidationError("entity_id", f"{text!r} is not a record id")
                    kwargs["entity_id"] = int(text)
        return EmailFilter(**kwargs)

    def clear_filters(self) -> None:
        """Reset every filter and show the first page."""
        self._quiet = True
        try:
            self.status.value = self.account.value = self.linked.value = self.entity_type.value = ""
            self.since.value = self.until.value = None
            self.search.value = self.entity_id.value = ""
        finally:
            self._quiet = False
        self.pager.go(0)

    def refresh(self) -> None:
        """Reload the current page (after a download, a status change or a link): counted again."""
        self._counts = {}
        self._cursors = {}
        self._load_page()

    def _load_page(self) -> None:
        if self._quiet:
            return
        flt = self.current_filter()
        size = self.pager.page_size
        with self._keeper.use():
            if flt not in self._counts:  # searched and counted once per filter, not for every page
                self._resolved = {flt: resolve_search(self.store, flt)}
                self._counts = {flt: self.store.count_matching(self._resolved[flt])}
                self._cursors = {}
            self.pager.set_total(self._counts[flt])
            query = self._resolved[flt]
            cursor = self._cursors.get((flt, size, self.pager.page))
            if cursor is not None:  # the next page: continue after the last row (keyset)
                page = self.store.list_emails(query, limit=size, after=cursor)
            else:  # a jump to a page number
                page = self.store.list_emails(query, limit=size, offset=self.pager.offset)
        after = Cursor.after(page)
        if after is not None:
            self._cursors[(flt, size, self.pager.page + 1)] = after
        if "related_count" not in page.columns:
            page["related_count"] = None
        self.page = page
        rows = [
            {"date": r.sent_at, "sender": (f"{r.from_name} <{r.from_address}>" if r.from_name else r.from_address),
             "subject": r.subject or "(no subject)", "accounts": r.accounts, "status": r.status,
             "attach": r.has_attachments, "related": r.related_count}
            for r in page.itertuples(index=False)
        ]
        self.table.show(rows, [int(i) for i in page["email_id"]], empty_text="No mail matches.")
        self._selection_changed()

    # -- selection ------------------------------------------------------------------------------
    @property
    def selected_ids(self) -> list[int]:
        """The ticked mails, in the order ticked."""
        return list(self.table.selected)

    def select(self, email_ids: list[int]) -> None:
        """Tick exactly these mails (on any page)."""
        self.table.set_selection([int(i) for i in email_ids])

    def select_page(self) -> None:
        """Tick every mail on the current page (keeping ticks on other pages)."""
        self.table.set_selection(list(self.table.selected) + [k for k in self.table.keys if k not in self.table.selected])

    def select_none(self) -> None:
        """Untick every mail."""
        self.table.set_selection([])

    def _selection_changed(self) -> None:
        self.selection.value = f'<span style="padding-left:.6em">{len(self.table.selected)} ticked</span>'
        for listener in list(self.selection_listeners):
            try:
                listener()
            except Exception as exc:  # noqa: BLE001 - shown, never lost
                self.report(exc, "selection")

    def open(self, email_id: int) -> None:
        """Open a mail in the reader (the ``on_open`` callback)."""
        if self.on_open is None:
            raise ValidationError("reader", "no reader is connected to this list")
        self.on_open(int(email_id))


class MailReaderPanel(Panel):
    """One mail: headers, the sanitised body (remote images blocked until asked), attachments to save
    or download, read/unread, its relations, and Reply / Reply all when replying is available.

    ``MailReaderPanel(store, user=None, on_change=None, save_dir=".")``: ``on_change()`` is called after
    a status change (give it ``mail_list.refresh``). Public: :meth:`open`, :meth:`show_remote_images`,
    :meth:`show_text`, :meth:`mark`, :meth:`save_attachment`, :meth:`download_link`, :meth:`reply`.

    Opening a mail reads its attachment list once, without content, and shows it a page at a time
    (:data:`ATTACHMENT_PAGE` rows, :attr:`attachments_pager`); a part's content is read only when
    its Save or Download button is pressed, so opening costs time in proportion to the mail's size.
    """

    def __init__(self, store: Any, user: str | None = None, *, on_change: Callable[[], None] | None = None,
                 save_dir: str = ".", reply_panel: Any = None) -> None:
        super().__init__()
        self.store = store
        self.user = user
        self.on_change = on_change
        self.email_id: int | None = None
        self.rendered: render.RenderedBody | None = None
        self._remote = False
        self._prefer = "html"

        self.headers = W.HTML()
        self.headers.add_class("vmk-headers-box")
        self.body = W.HTML()
        self.body.add_class("vmk-body-box")
        self.remote_button = W.Button(description="Show remote images", icon="image", layout=W.Layout(width="16em", display="none"))
        self.remote_button.add_class("vmk-remote-images")
        self.text_toggle = W.ToggleButtons(options=[("HTML", "html"), ("Text", "text")], value="html",
                                           layout=W.Layout(display="none"))
        self.read_button = W.Button(description="Mark read", icon="envelope-open")
        self.unread_button = W.Button(description="Mark unread", icon="envelope")
        self.status_label = W.HTML()
        self.status_label.add_class("vmk-status")
        self.attachments_box = W.VBox([])
        self.attachments_box.add_class("vmk-attachments")
        #: The open mail's attachments without content (:func:`vmailkit.render.attachment_list`).
        self.attachments: pd.DataFrame = pd.DataFrame()
        self.attachments_pager = Pager(self.guard(self._show_attachments, "list attachments"),
                                       page_size=ATTACHMENT_PAGE, sizes=ATTACHMENT_PAGE_SIZES)
        self.attachments_pager.widget.add_class("vmk-attachment-pager")
        self.attachments_pager.widget.layout.display = "none"
        self._slots: list[_AttachmentSlot] = []
        self._page_parts: list[int] = []
        self._no_attachments = W.HTML("<i>none</i>")
        self._subject: str | None = None
        self.save_dir = W.Text(value=save_dir, description="Save to", layout=W.Layout(width="30em"))
        self.relations = W.HTML()
        self.relations.add_class("vmk-relations")
        self.reply_panel = reply_panel
        self.reply_button = W.Button(description="Reply", icon="reply", layout=W.Layout(display="none"))
        self.reply_all_button = W.Button(description="Reply all", icon="reply-all", layout=W.Layout(display="none"))
        if reply_panel is not None:
            self.reply_button.layout.display = self.reply_all_button.layout.display = ""
        actions = W.HBox([self.read_button, self.unread_button, self.status_label, self.reply_button, self.reply_all_button])
        self.content = W.VBox([self.headers, actions, W.HBox([self.text_toggle, self.remote_button]), self.body,
                               W.HTML("<b>Attachments</b>"), self.save_dir, self.attachments_box,
                               self.attachments_pager.widget, W.HTML("<b>Related to</b>"), self.relations],
                              layout=W.Layout(display="none"))
        self.placeholder = W.HTML(self._PLACEHOLDER)
        self.placeholder.add_class("vmk-reader-placeholder")
        parts: list[W.Widget] = [self.placeholder, self.content]
        if reply_panel is not None:
            parts.append(reply_panel.widget)
        parts += [self.message, self.log]
        self.widget = W.VBox(parts)
        self.widget.add_class("vmk-reader-panel")

        self.remote_button.on_click(self.guard(lambda _b: self.show_remote_images(), "remote images"))
        self.text_toggle.observe(self.guard(lambda c: self.show_text(c["new"] == "text"), "show body"), names="value")
        self.read_button.on_click(self.guard(lambda _b: self.mark("read"), "mark read"))
        self.unread_button.on_click(self.guard(lambda _b: self.mark("unread"), "mark unread"))
        self.reply_button.on_click(self.guard(lambda _b: self.reply(reply_all=False), "reply"))
        self.reply_all_button.on_click(self.guard(lambda _b: self.reply(reply_all=True), "reply all"))

    # -- showing --------------------------------------------------------------------------------
    _PLACEHOLDER = "<i>Open a mail from the list.</i>"

    def open(self, email_id: int) -> bool:
        """Show a mail (remote images blocked again, HTML body preferred); True when it is shown.

        Whatever was on screen is cleared first, so a mail that fails to open never leaves another
        mail's subject, body, attachments or relations displayed. Never raises: when the mail cannot
        be read at all, the panel says so in plain words (details in :attr:`log`) and returns False;
        when only its body, attachment list or relations fail, that place says so and the rest of
        the mail is shown.
        """
        self._clear()
        if self.reply_panel is not None and hasattr(self.reply_panel, "close"):
            self.guard(self.reply_panel.close, "close the reply")()
        try:
            with self.store.session():
                self._open(int(email_id))
        except Exception as exc:  # noqa: BLE001 - shown in plain words, details in the log
            self._failed(exc)
            return False
        self.placeholder.layout.display = "none"
        self.content.layout.display = ""
        return True

    def _clear(self) -> None:
        """Forget and blank everything shown about the previous mail."""
        self.email_id = None
        self.rendered = None
        self._subject = None
        self.message.value = ""
        self.content.layout.display = "none"
        self.placeholder.value = self._PLACEHOLDER
        self.placeholder.layout.display = ""
        self.headers.value = ""
        self.body.value = ""
        self.status_label.value = ""
        self.remote_button.layout.display = "none"
        self.text_toggle.layout.display = "none"
        self.attachments = pd.DataFrame()
        self._page_parts = []
        for slot in self._slots:
            slot.link.value = ""
        self.attachments_box.children = []
        self.attachments_pager.widget.layout.display = "none"
        self.relations.value = ""

    def _failed(self, exc: Exception) -> None:
        """Show that the mail could not be opened: plain words on screen, the details in the log."""
        about = f"The mail “{render.display_text(self._subject)}”" if self._subject else "This mail"
        if isinstance(exc, NotFoundError):
            text = f"{about} is no longer in the store; it may have been deleted. Pick another mail from the list."
        elif isinstance(exc, VmailkitError):
            text = f"{about} could not be opened: {exc}"
        else:
            text = f"{about} could not be opened because of an unexpected problem; the details are in the log below."
        self.report(exc, "open mail")
        self._clear()
        self.message.value = note(text, "error")
        self.placeholder.value = note(text, "error")

    def _part(self, func: Callable[[], None], what: str, fallback: Callable[[], None]) -> None:
        """Run one part of showing a mail; on failure show ``fallback`` there and say so in plain words."""
        try:
            func()
        except Exception as exc:  # noqa: BLE001 - one part failing does not hide the rest of the mail
            self._part_failed(exc, what)
            fallback()

    def _part_failed(self, exc: Exception, what: str) -> None:
        """Log a failed part of the mail and say in plain words which part is missing."""
        self.report(exc, what)
        self.message.value = note(f"Part of this mail could not be shown ({what}); the details are in the log below.",
                                  "error")

    def _open(self, email_id: int) -> None:
        mail = self.store.get_email(int(email_id))
        self.email_id = int(email_id)
        self._subject = mail.get("subject")
        self._remote, self._prefer = False, "html"
        try:
            accounts = ", ".join(sorted({str(a) for a in self.store.locations(self.email_id)["account"]}))
        except Exception as exc:  # noqa: BLE001 - the headers are shown without the account
            self._part_failed(exc, "the accounts")
            accounts = ""
        self.headers.value = render.headers_html(mail, accounts=accounts)
        both = bool(mail.get("body_html")) and bool((mail.get("body_text") or "").strip())
        self.text_toggle.layout.display = "" if both else "none"
        self.text_toggle.unobserve_all("value")
        self.text_toggle.value = "html"
        self.text_toggle.observe(self.guard(lambda c: self.show_text(c["new"] == "text"), "show body"), names="value")
        self._part(lambda: self._render(mail), "the text",
                   lambda: setattr(self.body, "value", note("The text of this mail could not be shown.", "error")))
        self._status(str(mail.get("status") or "unread"))
        self._part(self._attachments, "the attachments",
                   lambda: setattr(self.attachments_box, "children",
                                   [W.HTML(note("The attachments of this mail could not be listed.", "error"))]))
        self._part(self._relations, "the related records",
                   lambda: setattr(self.relations, "value", note("The records of this mail could not be listed.", "error")))

    def _render(self, mail: dict[str, Any] | None = None) -> None:
        email_id = self._require()
        self.rendered = None
        self.rendered = render.render_email(self.store, email_id, allow_remote_images=self._remote, prefer=self._prefer,
                                            mail=mail)
        self.body.value = self.rendered.frame()
        n = len(self.rendered.blocked_images)
        self.remote_button.description = f"Show remote images ({n} blocked)"
        self.remote_button.layout.display = "" if n else "none"

    def show_remote_images(self) -> None:
        """Render the open mail again with its remote images loaded."""
        self._require()
        self._remote = True
        self._render()
        self.say("Remote images are shown for this mail; the sender may learn that it was read.", "warn")

    def show_text(self, text: bool = True) -> None:
        """Show the plain-text body (``text=True``) or the HTML body."""
        self._require()
        self._prefer = "text" if text else "html"
        self._render()

    def _status(self, status: str) -> None:
        self.status_label.value = f'<span class="vmk-status-{esc(status)}" style="padding:0 .8em">status: <b>{esc(status)}</b></span>'
        self.read_button.disabled = status == "read"
        self.unread_button.disabled = status == "unread"

    def _require(self) -> int:
        if self.email_id is None:
            raise ValidationError("mail", "open a mail first")
        return self.email_id

    # -- actions --------------------------------------------------------------------------------
    def mark(self, status: str) -> None:
        """Mark the open mail ``read`` or ``unread`` (in the store; the server is never changed)."""
        email_id = self._require()
        self.store.set_status(email_id, status)
        self._status(status)
        if self.on_change is not None:
            self.on_change()

    def _attachments(self) -> None:
        """Read the open mail's attachment list (one query, no content) and show its first page."""
        email_id = self._require()
        self.attachments = render.attachment_list(self.store, email_id)
        self.attachments_pager.page = 0
        self._show_attachments()

    def _slot(self, i: int) -> _AttachmentSlot:
        """Row widgets number ``i``, made on first use."""
        while len(self._slots) <= i:
            n = len(self._slots)
            label = W.HTML()
            save = W.Button(description="Save", icon="save", tooltip="save into the “Save to” folder",
                            layout=W.Layout(width="6em"))
            save.add_class("vmk-save-attachment")
            save.on_click(self.guard(lambda _b, n=n: self.save_attachment(self._page_parts[n]), "save attachment"))
            download = W.Button(description="Download", icon="download", tooltip="make a link to download it in the browser",
                                layout=W.Layout(width="8em"))
            download.add_class("vmk-download-attachment")
            download.on_click(self.guard(lambda _b, n=n: self.download_link(self._page_parts[n]), "download attachment"))
            link = W.HTML()
            row = W.HBox([label, save, download, link], layout=W.Layout(align_items="center"))
            row.add_class("vmk-attachment")
            self._slots.append(_AttachmentSlot(label, save, download, link, row))
        return self._slots[i]

    def _show_attachments(self) -> None:
        """Show the attachment page the pager points at (reusing the row widgets)."""
        frame = self.attachments
        pager = self.attachments_pager
        pager.set_total(len(frame))
        pager.widget.layout.display = "" if len(frame) > min(ATTACHMENT_PAGE_SIZES) else "none"
        page = frame.iloc[pager.offset: pager.offset + pager.page_size] if len(frame) else frame
        parts: list[int] = []
        for i, r in enumerate(page.itertuples(index=False)):
            part = int(r.part_index)
            name = render.safe_filename(r.filename, r.content_type, part)
            slot = self._slot(i)
            slot.label.value = (
                f'<span class="vmk-attachment-name" title="{esc(name)}" style="display:inline-block;width:22em;'
                f'overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:middle">{esc(name)}</span>'
                f'<span style="display:inline-block;width:10em;color:#666;overflow:hidden;white-space:nowrap;'
                f'vertical-align:middle">{esc(render.display_text(r.content_type))}</span>'
                f'<span style="display:inline-block;width:7em;vertical-align:middle">{int(r.size):,} B</span>'
                f"{'<i>inline</i>' if r.is_inline else ''}"
            )
            slot.link.value = ""
            parts.append(part)
        self._page_parts = parts
        self.attachments_box.children = [slot.row for slot in self._slots[: len(parts)]] or [self._no_attachments]

    def save_attachment(self, part_index: int, path: str | None = None, *, overwrite: bool = False) -> str:
        """Save one attachment into the "Save to" folder (or ``path``); returns the file written.

        Only that part's content is read. Raises what :func:`vmailkit.render.save_attachment` raises
        (:class:`ValidationError` for the path, :class:`NotFoundError` for an unknown part), and
        :class:`ValidationError` when no mail is open.
        """
        email_id = self._require()
        target = render.save_attachment(self.store, email_id, part_index, path or self.save_dir.value, overwrite=overwrite)
        self.say(f"Saved {target}", "ok")
        return str(target)

    def download_link(self, part_index: int) -> str:
        """Offer one attachment of the open mail as a browser download; returns the link's HTML.

        Only that part's content is read (parts over 5 MB get a note to save them instead). When the
        part is on the current attachment page the link appears in its row. Raises
        :class:`ValidationError` when no mail is open and :class:`NotFoundError` for an unknown part.
        """
        email_id = self._require()
        link = render.download_link(self.store, email_id, int(part_index), label="Click to download",
                                    max_size=5 * 1024 * 1024)
        if int(part_index) in self._page_parts:
            self._slots[self._page_parts.index(int(part_index))].link.value = link
        return link

    def _relations(self) -> None:
        email_id = self._require()
        try:
            from ..links import related
        except ImportError:  # pragma: no cover - linking not installed
            self.relations.value = "<i>(linking is not available)</i>"
            return
        frame = related(self.store, email_id)
        if frame.empty:
            self.relations.value = "<i>not linked to any record</i>"
            return
        rows = "".join(
            f"<tr><td>{esc(r.entity_type)}</td><td>{esc(r.entity_id)}</td><td>{esc(r.display_name)}</td>"
            f"<td>{esc(r.origin)}</td><td>{esc(r.rule)}</td></tr>"
            for r in frame.itertuples(index=False)
        )
        self.relations.value = ("<table class='vmk-relations-table'><tr><th>type</th><th>id</th><th>name</th>"
                                f"<th>origin</th><th>rule</th></tr>{rows}</table>")

    def refresh_relations(self) -> None:
        """Reload the open mail's relations (after linking)."""
        if self.email_id is not None:
            self._relations()

    def reply(self, *, reply_all: bool = False) -> None:
        """Start a reply to the open mail in the reply panel."""
        email_id = self._require()
        if self.reply_panel is None:
            raise ValidationError("reply", "replying is not available here")
        self.reply_panel.start(email_id, reply_all=reply_all)
