"""The linking panel: link ticked mails to CRM records, see and remove links, resolve candidates."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as W
import pandas as pd

from ..errors import ValidationError
from .common import Column, Panel, RowTable
from .mail import ENTITY_CHOICES, MailListPanel

_LABELS = {value: label for label, value in ENTITY_CHOICES}

RESULT_COLUMNS = [
    Column("entity_id", "Id", "5em"),
    Column("display_name", "Name", "18em"),
    Column("detail", "Detail", "18em"),
]
LINK_COLUMNS = [
    Column("email_id", "Mail", "4em"),
    Column("subject", "Subject", "16em"),
    Column("type", "Type", "8em"),
    Column("display_name", "Record", "14em"),
    Column("origin", "Origin", "8em"),
]
CANDIDATE_COLUMNS = [
    Column("email_id", "Mail", "4em"),
    Column("subject", "Subject", "16em"),
    Column("display_name", "Reservation", "10em"),
    Column("detail", "Customer", "12em"),
    Column("matched", "Number", "6em"),
]

#: Relations and candidates are shown for at most this many ticked mails.
MAX_MAILS_SHOWN = 50


def _links_api() -> Any:
    try:
        from .. import links
    except ImportError as exc:  # pragma: no cover - linking not installed
        raise ValidationError("linking", "linking to CRM records is not available in this installation") from exc
    return links


class LinkingPanel(Panel):
    """Link the mails ticked in a :class:`MailListPanel` to CRM records.

    ``LinkingPanel(store, mail_list, user=None, on_change=None)``: choose a type, search, tick
    results and save; the links of the ticked mails are listed with a Remove button; ambiguous
    reservation candidates (of the ticked mails, or of all mails when none is ticked) are offered
    for one-click linking. ``user`` is recorded as who linked. Public: :meth:`search`,
    :meth:`save_links`, :meth:`remove`, :meth:`link_candidate`, :meth:`refresh`.
    """

    def __init__(self, store: Any, mail_list: MailListPanel, user: str | None = None, *,
                 on_change: Callable[[], None] | None = None, result_limit: int = 50) -> None:
        super().__init__()
        self.links = _links_api()
        self.store = store
        self.mail_list = mail_list
        self.user = user
        self.on_change = on_change
        self.result_limit = result_limit
        self.results = pd.DataFrame()

        self.entity_type = W.Dropdown(options=ENTITY_CHOICES, value="customer", description="Type",
                                      layout=W.Layout(width="18em"))
        self.query = W.Text(placeholder="name, code, number, e-mail or id", continuous_update=False,
                            layout=W.Layout(width="20em"))
        self.search_button = W.Button(description="Search", icon="search", layout=W.Layout(width="8em"))
        self.search_button.add_class("vmk-search")
        self.results_table: RowTable[tuple[str, int]] = RowTable(RESULT_COLUMNS, page_size=result_limit,
                                                                 on_select=self._update_buttons, css_class="vmk-results")
        self.save_button = W.Button(description="Link ticked mails", icon="link", button_style="primary",
                                    disabled=True, layout=W.Layout(width="14em"))
        self.save_button.add_class("vmk-save-links")
        self.target_info = W.HTML()
        self.links_table: RowTable[tuple[int, str, int]] = RowTable(
            LINK_COLUMNS, page_size=10, checkboxes=False, action="Remove",
            on_action=self.guard(lambda key: self.remove(*key), "remove link"), css_class="vmk-links")
        self.candidates_table: RowTable[tuple[int, str, int]] = RowTable(
            CANDIDATE_COLUMNS, page_size=10, checkboxes=False, action="Link",
            on_action=self.guard(lambda key: self.link_candidate(*key), "link candidate"), css_class="vmk-candidates")

        self.widget = W.VBox([
            W.HTML("<b>Link the ticked mails to records</b>"),
            W.HBox([self.entity_type, self.query, self.search_button]),
            self.results_table.widget,
            W.HBox([self.save_button, self.target_info]),
            W.HTML("<b>Links of the ticked mails</b>"),
            self.links_table.widget,
            W.HTML("<b>Reservation candidates</b> <span style='color:#666'>(a number in the subject that fits "
                   "several reservations: pick the right one)</span>"),
            self.candidates_table.widget,
            self.message, self.log,
        ])
        self.widget.add_class("vmk-linking-panel")

        self.search_button.on_click(self.guard(lambda _b: self.search(), "search"))
        self.query.observe(self.guard(lambda _c: self.search(), "search"), names="value")
        self.entity_type.observe(self.guard(lambda _c: self._type_changed(), "search"), names="value")
        self.save_button.on_click(self.guard(lambda _b: self.save_links(), "link"))
        mail_list.selection_listeners.append(self.guard(self.refresh, "links"))
        self.results_table.show([], [], empty_text="Search for a record.")
        self.refresh()

    # -- search and link --------------------------------------------------------------------------
    def _type_changed(self) -> None:
        self.results_table.set_selection([])
        self.search()

    def search(self) -> pd.DataFrame:
        """Search records of the chosen type for the query text; shows up to ``result_limit`` hits."""
        frame = self.links.search(self.store, self.entity_type.value, self.query.value, limit=self.result_limit)
        self.results = frame
        keys = [(str(t), int(i)) for t, i in zip(frame["entity_type"], frame["entity_id"])]
        rows = frame[["entity_id", "display_name", "detail"]].to_dict("records")
        self.results_table.show(rows, keys, empty_text="No record matches.")
        self._update_buttons()
        return frame

    def select_records(self, targets: Any) -> None:
        """Tick records to link, also ones not in the search results: ``"customer:10"`` or ``("customer", 10)``."""
        from ..store import normalize_targets

        for key in normalize_targets(list(targets)):
            self.results_table.tick(key)

    def _update_buttons(self) -> None:
        mails, targets = len(self.mail_list.selected_ids), len(self.results_table.selected)
        self.save_button.disabled = not (mails and targets)
        self.target_info.value = (f'<span style="padding-left:.6em">{mails} mail(s) ticked × {targets} record(s) ticked</span>')

    def save_links(self) -> int:
        """Link every ticked mail to every ticked record; returns how many links were new."""
        mails = self.mail_list.selected_ids
        targets = list(self.results_table.selected)
        if not mails:
            raise ValidationError("mails", "tick the mails to link in the list above")
        if not targets:
            raise ValidationError("records", "tick the records to link in the search results")
        added = self.links.link(self.store, mails, targets, user=self.user)
        self.results_table.set_selection([])
        self.say(f"{added} link(s) added ({len(mails)} mail(s), {len(targets)} record(s)).", "ok")
        self._changed()
        return added

    def remove(self, email_id: int, entity_type: str, entity_id: int) -> int:
        """Remove one link (remembered, so automatic matching never adds it again)."""
        removed = self.links.unlink(self.store, int(email_id), (entity_type, int(entity_id)), user=self.user)
        self.say(f"Link of mail {email_id} to {_LABELS.get(entity_type, entity_type)} {entity_id} removed.", "ok")
        self._changed()
        return removed

    def link_candidate(self, email_id: int, entity_type: str, entity_id: int) -> int:
        """Link a mail to one of its candidate reservations."""
        added = self.links.link(self.store, int(email_id), (entity_type, int(entity_id)), user=self.user)
        self.say(f"Mail {email_id} linked to {_LABELS.get(entity_type, entity_type)} {entity_id}.", "ok")
        self._changed()
        return added

    def _changed(self) -> None:
        self.mail_list.refresh()   # related counts; refreshes this panel too, through the selection listener
        if self.on_change is not None:
            self.on_change()

    # -- lists ----------------------------------------------------------------------------------
    def _subjects(self, ids: list[int]) -> dict[int, str]:
        page = self.mail_list.page
        known = {}
        if not page.empty:
            known = {int(i): s for i, s in zip(page["email_id"], page["subject"])}
        for i in ids:
            if i not in known:
                known[i] = self.store.get_email(i).get("subject") or ""
        return known

    def refresh(self) -> None:
        """Reload the links and candidates of the ticked mails."""
        ids = self.mail_list.selected_ids[:MAX_MAILS_SHOWN]
        self._update_buttons()
        link_rows, link_keys = [], []
        frames = []
        with self.store.session():
            subjects = self._subjects(ids)
            for email_id in ids:
                rel = self.links.related(self.store, email_id)
                for r in rel.itertuples(index=False):
                    link_rows.append({"email_id": email_id, "subject": subjects.get(email_id, ""),
                                      "type": _LABELS.get(r.entity_type, r.entity_type),
                                      "display_name": r.display_name or f"(id {r.entity_id})", "origin":
                                      f"{r.origin}{' · ' + r.rule if isinstance(r.rule, str) and r.rule else ''}"})
                    link_keys.append((email_id, str(r.entity_type), int(r.entity_id)))
            if ids:
                frames = [self.links.link_candidates(self.store, i) for i in ids]
            else:
                frames = [self.links.link_candidates(self.store)]
        self.links_table.show(link_rows, link_keys,
                              empty_text="Tick mails in the list to see their links." if not ids else "No links.")
        cands = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if not cands.empty:   # a group (mail, number) is resolved once one of its records is linked
            resolved = cands.groupby(["email_id", "matched"], dropna=False)["linked"].transform("any").astype(bool)
            cands = cands[~resolved].head(50)
        cand_subjects = self._subjects(sorted({int(i) for i in cands["email_id"]})) if not cands.empty else {}
        rows = [{"email_id": int(r.email_id), "subject": cand_subjects.get(int(r.email_id), ""),
                 "display_name": r.display_name, "detail": r.detail, "matched": r.matched}
                for r in cands.itertuples(index=False)] if not cands.empty else []
        keys = [(int(r.email_id), str(r.entity_type), int(r.entity_id)) for r in cands.itertuples(index=False)] \
            if not cands.empty else []
        self.candidates_table.show(rows, keys, empty_text="No open candidates.")
