"""The reply panel: compose a reply (or reply-all) to the open mail, edit it, send it over SMTP."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as W

from ..errors import ValidationError
from .common import Panel, PasswordBook, Worker, esc, labelled, note


def _reply_api() -> Any:
    try:
        from .. import reply
    except ImportError as exc:  # pragma: no cover - replying not installed
        raise ValidationError("reply", "replying is not available in this installation") from exc
    return reply


def reply_available() -> bool:
    """True when vmailkit can send replies (``vmailkit.reply`` is installed)."""
    try:
        _reply_api()
    except ValidationError:  # pragma: no cover
        return False
    return True


class ReplyPanel(Panel):
    """Compose, edit and send a reply; give it to :class:`MailReaderPanel` as ``reply_panel``.

    ``ReplyPanel(store, user=None, passwords=None, on_sent=None)``: the draft comes from
    :func:`vmailkit.compose_reply` and is sent by :func:`vmailkit.send_reply` in a worker thread;
    an SMTP password typed here goes to the in-memory :class:`PasswordBook` under
    ``"<account>:smtp"`` and the field is cleared. ``on_sent(email_id)`` is called after a send.
    Public: :meth:`start`, :meth:`draft_from_form`, :meth:`send`, :meth:`close`, :meth:`wait`.
    """

    def __init__(self, store: Any, user: str | None = None, *, passwords: PasswordBook | None = None,
                 on_sent: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.api = _reply_api()
        self.store = store
        self.user = user
        self.passwords = passwords if passwords is not None else PasswordBook()
        self.on_sent = on_sent
        self.draft: Any = None
        self.sent_id: int | None = None

        wide = W.Layout(width="40em")
        self.title = W.HTML()
        self.sender = W.HTML()
        self.to = W.Text(layout=wide)
        self.cc = W.Text(layout=wide)
        self.subject = W.Text(layout=wide)
        self.body = W.Textarea(placeholder="Your answer (the original is quoted below it)",
                               layout=W.Layout(width="40em", height="10em"))
        self.smtp_password = W.Password(placeholder="SMTP password (kept in memory only)", layout=W.Layout(width="22em"))
        self.smtp_password.add_class("vmk-password")
        self.password_row = labelled("Password", self.smtp_password, "6em")
        self.quote = W.HTML()
        self.send_button = W.Button(description="Send", icon="paper-plane", button_style="primary")
        self.send_button.add_class("vmk-send")
        self.discard_button = W.Button(description="Discard", icon="times")
        self.worker = Worker(self, cancellable=False)
        self.result = W.HTML()
        self.result.add_class("vmk-send-result")
        self.form = W.VBox([
            self.title, self.sender,
            labelled("To", self.to, "6em"), labelled("Cc", self.cc, "6em"), labelled("Subject", self.subject, "6em"),
            self.body, self.password_row, W.HBox([self.send_button, self.discard_button]),
            self.worker.widget, self.quote,
        ], layout=W.Layout(display="none", border="1px solid #ddd", padding="6px"))
        self.widget = W.VBox([self.form, self.result, self.message, self.log])
        self.widget.add_class("vmk-reply-panel")

        self.send_button.on_click(self.guard(lambda _b: self.send(), "send reply"))
        self.discard_button.on_click(self.guard(lambda _b: self.close(), "discard"))

    def start(self, email_id: int, *, reply_all: bool = False) -> Any:
        """Compose the reply to ``email_id`` and show it for editing."""
        draft = self.api.compose_reply(self.store, int(email_id), reply_all=reply_all, user=self.user)
        self.draft = draft
        self.sent_id = None
        self.title.value = f"<b>{'Reply all' if reply_all else 'Reply'}</b> to mail {int(email_id)}"
        self.sender.value = f"From <b>{esc(draft.from_address)}</b> (account {esc(draft.account)})"
        self.to.value = ", ".join(draft.to)
        self.cc.value = ", ".join(draft.cc)
        self.subject.value = draft.subject
        self.body.value = ""
        self.quote.value = (f'<div style="color:#666">{esc(draft.attribution)}</div>'
                            f'<pre style="white-space:pre-wrap;color:#666;max-height:12em;overflow:auto">'
                            f"{esc(self.api.quote_text(draft.quoted_text))}</pre>")
        account = self.store.get_account(draft.account)
        smtp_ref = (account.smtp.secret_ref if account.smtp is not None else "") or "prompt:"
        needs = smtp_ref == "prompt:" and not self.passwords.get(f"{account.name}:smtp") \
            and not self.passwords.get(account.name)
        self.password_row.layout.display = "" if needs else "none"
        self.result.value = ""
        self.send_button.disabled = False
        self.form.layout.display = ""
        return draft

    def draft_from_form(self) -> Any:
        """The draft with the edited recipients, subject and text."""
        if self.draft is None:
            raise ValidationError("reply", "press Reply on a mail first")
        return self.draft.edit(to=self.to.value, cc=self.cc.value, subject=self.subject.value, body=self.body.value)

    def send(self) -> None:
        """Send the reply in a worker thread; the panel shows the result."""
        draft = self.draft_from_form()
        if not draft.to:
            raise ValidationError("to", "the reply needs at least one recipient")
        _ = draft.recipients                       # validates the addresses before anything is sent
        self.passwords.take_from(f"{draft.account}:smtp", self.smtp_password)
        passwords, user = self.passwords, self.user
        self.send_button.disabled = True
        self.result.value = note(f"Sending to {', '.join(draft.recipients)} …")

        def job(_progress: Any, _cancel: threading.Event) -> int:
            return int(self.api.send_reply(self.store, draft, user=user, passwords=passwords))

        def done(email_id: int) -> None:
            self.sent_id = email_id
            self.form.layout.display = "none"
            self.result.value = note(f"Sent to {', '.join(draft.recipients)}; stored as mail {email_id}.", "ok")
            if self.on_sent is not None:
                self.on_sent(email_id)

        def finish() -> None:
            if self.worker.last_error is not None:
                self.send_button.disabled = False
                self.result.value = note(f"Not sent: {self.worker.last_error}", "error")

        self.worker.start(job, done, label="send reply", cancellable=False, on_finish=finish)

    def close(self) -> None:
        """Hide the form and forget the draft."""
        self.draft = None
        self.form.layout.display = "none"
        self.smtp_password.value = ""

    def wait(self, timeout: float | None = 60) -> bool:
        """Wait for a send in progress."""
        return self.worker.wait(timeout)
