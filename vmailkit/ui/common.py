"""Building blocks shared by the panels: error capture, a worker thread with progress and cancel,
in-memory passwords, a pager and a table of rows with checkboxes.

Nothing here knows about mail: panels combine these with one library call per event.
"""
from __future__ import annotations

import html
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import ipywidgets as W

from ..errors import VmailkitError

T = TypeVar("T")

#: Widths used by the tables and forms.
LABEL_WIDTH = "9em"


def esc(value: Any) -> str:
    """``value`` as escaped text ("" for None/NaN)."""
    if value is None:
        return ""
    try:
        if value != value:  # NaN / NaT
            return ""
    except (TypeError, ValueError):
        pass
    return html.escape(str(value), quote=True)


def note(text: str, kind: str = "info") -> str:
    """A one-line message as HTML: ``info``, ``ok``, ``warn`` or ``error`` (text is escaped)."""
    colors = {"info": "#555", "ok": "#1a7f37", "warn": "#9a6700", "error": "#cf222e"}
    icons = {"info": "", "ok": "✔ ", "warn": "⚠ ", "error": "✖ "}
    return (f'<span class="vmk-note vmk-{kind}" style="color:{colors.get(kind, "#555")}">'
            f"{icons.get(kind, '')}{esc(text)}</span>")


class PasswordBook(MutableMapping[str, str]):
    """Passwords typed in this session, by account name: kept in memory only.

    Pass it as ``passwords=`` to :func:`vmailkit.check` / :func:`vmailkit.download`. Its ``repr``
    shows account names, never a password; nothing is ever written to disk.
    """

    def __init__(self) -> None:
        self._data: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __setitem__(self, key: str, value: str) -> None:
        if value:
            self._data[key] = value
        else:
            self._data.pop(key, None)

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"PasswordBook(accounts={sorted(self._data)!r})"

    __str__ = __repr__

    def take_from(self, account: str, widget: W.Password) -> bool:
        """Move a typed password from ``widget`` into the book and clear the widget; True if one was typed."""
        value = widget.value
        widget.value = ""
        if value:
            self[account] = value
            return True
        return False


class Panel:
    """Base of every panel: a message line and an error log that callbacks report into.

    ``errors`` keeps the text of every error shown (tests and callers read it); nothing raised in a
    callback is lost: :class:`VmailkitError` is shown in plain words, anything else with its
    traceback in :attr:`log`.
    """

    widget: W.Widget

    def __init__(self) -> None:
        self.message = W.HTML(layout=W.Layout(min_height="1.6em"))
        self.message.add_class("vmk-message")
        self.log = W.Output(layout=W.Layout(max_height="16em", overflow="auto"))
        self.log.add_class("vmk-log")
        self.errors: list[str] = []
        self._lock = threading.Lock()

    # -- messages ----------------------------------------------------------------------------
    def say(self, text: str, kind: str = "info") -> None:
        """Show one line in the panel's message area."""
        self.message.value = note(text, kind)

    def report(self, exc: BaseException, context: str = "") -> None:
        """Show an error raised by a callback; unexpected ones get their traceback in :attr:`log`."""
        prefix = f"{context}: " if context else ""
        if isinstance(exc, VmailkitError):
            text = f"{prefix}{exc}"
        else:
            text = f"{prefix}unexpected {type(exc).__name__}: {exc}"
        with self._lock:
            self.errors.append(text)
        self.message.value = note(text, "error")
        detail = text + "\n"
        if not isinstance(exc, VmailkitError):
            detail += "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.log.append_stderr(detail)

    def clear_errors(self) -> None:
        """Forget shown errors and clear the log."""
        with self._lock:
            self.errors.clear()
        self.log.outputs = ()
        self.message.value = ""

    def guard(self, func: Callable[..., Any], context: str = "") -> Callable[..., Any]:
        """Wrap a widget callback so that whatever it raises is reported in the panel."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - shown in the panel, never lost
                self.report(exc, context)
                return None

        wrapper.__name__ = getattr(func, "__name__", "callback")
        wrapper.__doc__ = getattr(func, "__doc__", None)
        return wrapper

    def _ipython_display_(self) -> None:  # pragma: no cover - notebook display only
        from IPython.display import display

        display(self.widget)


class Worker:
    """Runs one job at a time in a thread, with a progress bar, a status line and a Cancel button.

    ``start(job, on_done)`` calls ``job(progress, cancel)`` in a thread; ``progress(done, total)``
    moves the bar, ``cancel`` is a :class:`threading.Event` set by the Cancel button. The result goes
    to ``on_done`` (still in the thread); an exception to the panel's :meth:`Panel.report`.
    :meth:`wait` joins the thread (tests and scripted notebooks use it).
    """

    def __init__(self, panel: Panel, *, cancellable: bool = True) -> None:
        self.panel = panel
        self.progress = W.IntProgress(value=0, min=0, max=1, layout=W.Layout(width="22em", visibility="hidden"))
        self.progress.add_class("vmk-progress")
        self.status = W.HTML()
        self.status.add_class("vmk-progress-text")
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True,
                                      layout=W.Layout(width="7em", display="" if cancellable else "none"))
        self.cancel_button.add_class("vmk-cancel")
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.widget = W.HBox([self.progress, self.cancel_button, self.status])
        self.thread: threading.Thread | None = None
        self.cancel_event = threading.Event()
        self.last_result: Any = None
        self.last_error: BaseException | None = None
        self._label = "working"

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        return self.thread is not None and self.thread.is_alive()

    def start(self, job: Callable[[Callable[[int, int], None], threading.Event], T], on_done: Callable[[T], None] | None = None,
              *, label: str = "working", cancellable: bool = True, on_finish: Callable[[], None] | None = None) -> threading.Thread:
        """Run ``job`` in a new thread; raises :class:`VmailkitError` while another job runs."""
        if self.busy:
            raise VmailkitError("still busy with the previous task; wait for it or press Cancel")
        self.cancel_event = threading.Event()
        self.last_result, self.last_error = None, None
        self.progress.bar_style = "info"
        self.progress.value, self.progress.max = 0, 1
        self.progress.layout.visibility = "visible"
        self.status.value = note(f"{label} …")
        self.cancel_button.disabled = not cancellable
        self._label = label

        def run() -> None:
            try:
                result = job(self.update, self.cancel_event)
                self.last_result = result
                if self.cancel_event.is_set():
                    self.progress.bar_style = "warning"
                else:
                    self.progress.bar_style = "success"
                    self.progress.value = self.progress.max
                if on_done is not None:
                    on_done(result)
            except BaseException as exc:  # noqa: BLE001 - reported in the panel
                self.last_error = exc
                self.progress.bar_style = "danger"
                self.status.value = note(f"{label} failed", "error")
                self.panel.report(exc, label)
            finally:
                self.cancel_button.disabled = True
                if on_finish is not None:
                    try:
                        on_finish()
                    except Exception as exc:  # noqa: BLE001
                        self.panel.report(exc, label)

        self.thread = threading.Thread(target=run, name=f"vmailkit-{label}", daemon=True)
        self.thread.start()
        return self.thread

    def update(self, done: int, total: int) -> None:
        """The progress callback: ``done`` of ``total`` items."""
        total = max(int(total), 1)
        self.progress.max = total
        self.progress.value = min(int(done), total)
        self.status.value = note(f"{self._label}: {done} of {total}")

    def cancel(self) -> None:
        """Ask the running job to stop at its next checkpoint."""
        self.cancel_event.set()
        self.cancel_button.disabled = True
        if self.busy:
            self.status.value = note(f"{self._label}: cancelling after the current chunk …", "warn")

    def wait(self, timeout: float | None = None) -> bool:
        """Join the running job; True when none is running any more."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        return not self.busy


class Pager:
    """Previous/next buttons and "page x of y (n rows)" for tables paged elsewhere (DuckDB, a frame)."""

    def __init__(self, on_change: Callable[[], None], *, page_size: int = 25, sizes: Sequence[int] = (10, 25, 50, 100)) -> None:
        self.page = 0
        self.total = 0
        self._on_change = on_change
        self.prev_button = W.Button(description="", icon="chevron-left", tooltip="previous page", layout=W.Layout(width="3em"))
        self.next_button = W.Button(description="", icon="chevron-right", tooltip="next page", layout=W.Layout(width="3em"))
        self.prev_button.add_class("vmk-prev")
        self.next_button.add_class("vmk-next")
        self.size = W.Dropdown(options=[(f"{s} per page", s) for s in sorted({*sizes, page_size})], value=page_size,
                               layout=W.Layout(width="9em"))
        self.label = W.HTML()
        self.label.add_class("vmk-pager-label")
        self.prev_button.on_click(lambda _b: self.go(self.page - 1))
        self.next_button.on_click(lambda _b: self.go(self.page + 1))
        self.size.observe(lambda _c: self.go(0), names="value")
        self.widget = W.HBox([self.prev_button, self.label, self.next_button, self.size])

    @property
    def page_size(self) -> int:
        return int(self.size.value)

    @property
    def offset(self) -> int:
        return self.page * self.page_size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    def go(self, page: int) -> None:
        """Show page ``page`` (clamped) and call the owner to load it."""
        self.page = max(0, min(int(page), self.pages - 1))
        self._on_change()

    def set_total(self, total: int) -> None:
        """Record the number of rows the filter matches; keeps the page in range."""
        self.total = int(total)
        if self.page > self.pages - 1:
            self.page = self.pages - 1
        first = self.offset + 1 if self.total else 0
        last = min(self.offset + self.page_size, self.total)
        self.label.value = (f'<span style="padding:0 .6em">{first}–{last} of {self.total} '
                            f"(page {self.page + 1} of {self.pages})</span>")
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= self.pages - 1


@dataclass(frozen=True)
class Column:
    """A table column: the row key, its title, CSS width and a formatter to text (escaped later)."""

    key: str
    title: str
    width: str = "8em"
    fmt: Callable[[Any], str] | None = None


class RowTable(Generic[T]):
    """One page of rows: a checkbox (optional), the cells, and an action button (optional) per row.

    The row widgets are made once (``page_size`` slots) and reused on every page, so paging costs
    no widget creation. The selection is kept by row key across pages in :attr:`selected`.
    """

    def __init__(self, columns: Sequence[Column], *, page_size: int = 100, checkboxes: bool = True,
                 action: str | None = None, on_action: Callable[[T], None] | None = None,
                 on_select: Callable[[], None] | None = None, css_class: str = "vmk-table") -> None:
        self.columns = list(columns)
        self.checkboxes = checkboxes
        self.selected: dict[T, None] = {}
        self.keys: list[T] = []
        self._on_action = on_action
        self._on_select = on_select
        self._quiet = False
        self._slots: list[tuple[W.Checkbox, W.HTML, W.Button | None, W.HBox]] = []
        self._action = action
        self.header = W.HTML(self._row_html({c.key: c.title for c in self.columns}, header=True))
        self.empty = W.HTML("")
        self.body = W.VBox([])
        self.widget = W.VBox([self.header, self.body, self.empty])
        self.widget.add_class(css_class)
        self._ensure_slots(page_size)

    def _row_html(self, values: dict[str, Any], *, header: bool = False) -> str:
        cells = []
        for c in self.columns:
            raw = values.get(c.key)
            text = raw if header else (c.fmt(raw) if c.fmt else raw)
            weight = "font-weight:600;" if header else ""
            cells.append(
                f'<span class="vmk-cell vmk-col-{c.key}" title="{esc(text)}" style="display:inline-block;width:{c.width};'
                f'overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:middle;padding-right:.6em;{weight}">'
                f"{esc(text)}</span>"
            )
        pad = '<span style="display:inline-block;width:2.2em"></span>' if header and self.checkboxes else ""
        return f'<div class="vmk-row-cells" style="white-space:nowrap">{pad}{"".join(cells)}</div>'

    def _ensure_slots(self, n: int) -> None:
        while len(self._slots) < n:
            i = len(self._slots)
            box = W.Checkbox(value=False, indent=False, layout=W.Layout(width="2.2em"))
            box.add_class("vmk-row-check")
            box.observe(lambda change, i=i: self._toggled(i, change["new"]), names="value")
            cells = W.HTML()
            button = None
            parts: list[W.Widget] = [box] if self.checkboxes else []
            parts.append(cells)
            if self._action:
                button = W.Button(description=self._action, layout=W.Layout(width="6em"))
                button.add_class("vmk-row-action")
                button.on_click(lambda _b, i=i: self._act(i))
                parts.append(button)
            row = W.HBox(parts, layout=W.Layout(align_items="center"))
            row.add_class("vmk-row")
            self._slots.append((box, cells, button, row))

    def _toggled(self, i: int, value: bool) -> None:
        if self._quiet or i >= len(self.keys):
            return
        key = self.keys[i]
        if value:
            self.selected[key] = None
        else:
            self.selected.pop(key, None)
        if self._on_select:
            self._on_select()

    def _act(self, i: int) -> None:
        if i < len(self.keys) and self._on_action:
            self._on_action(self.keys[i])

    def show(self, rows: Sequence[dict[str, Any]], keys: Sequence[T], *, empty_text: str = "(nothing to show)") -> None:
        """Show ``rows`` (one dict per row) identified by ``keys``."""
        self._ensure_slots(len(rows))
        self.keys = list(keys)
        self._quiet = True
        try:
            for i, row in enumerate(rows):
                box, cells, _button, _row = self._slots[i]
                box.value = self.keys[i] in self.selected
                cells.value = self._row_html(row)
        finally:
            self._quiet = False
        self.body.children = [slot[3] for slot in self._slots[: len(rows)]]
        self.empty.value = f'<i class="vmk-empty">{esc(empty_text)}</i>' if not rows else ""

    def tick(self, key: T, value: bool = True) -> None:
        """Select or unselect a row by key (also when it is not on the current page)."""
        if value:
            self.selected[key] = None
        else:
            self.selected.pop(key, None)
        if key in self.keys:
            box = self._slots[self.keys.index(key)][0]
            self._quiet = True
            try:
                box.value = value
            finally:
                self._quiet = False
        if self._on_select:
            self._on_select()

    def set_selection(self, keys: Iterable[T]) -> None:
        """Replace the selection."""
        self.selected = dict.fromkeys(keys)
        self._quiet = True
        try:
            for i, key in enumerate(self.keys):
                self._slots[i][0].value = key in self.selected
        finally:
            self._quiet = False
        if self._on_select:
            self._on_select()

    def checkbox(self, key: T) -> W.Checkbox:
        """The checkbox of a row on the current page (tests tick it like a person would)."""
        return self._slots[self.keys.index(key)][0]

    def action_button(self, key: T) -> W.Button:
        """The action button of a row on the current page."""
        button = self._slots[self.keys.index(key)][2]
        if button is None:
            raise LookupError("this table has no row buttons")
        return button


def labelled(label: str, widget: W.Widget, width: str = LABEL_WIDTH) -> W.HBox:
    """``widget`` with a fixed-width label in front."""
    return W.HBox([W.Label(label, layout=W.Layout(width=width)), widget])


def default_after_chunk() -> Callable[[Any, list[int]], int] | None:
    """The automatic matcher as the download's ``after_chunk`` hook, when vmailkit has one."""
    try:
        from ..match import match_new
    except ImportError:  # pragma: no cover - matching not installed
        return None
    return match_new
