"""The JupyterLab workbench: one small ipywidgets panel per task.

Each panel receives the store (and what else it needs) explicitly, exposes ``.widget`` and turns
each event into one library call; errors raised in a callback are shown in the panel. Long work
(checking and downloading mail, testing a connection) runs in a worker thread with a progress bar
and a Cancel button, so the kernel stays responsive; ``panel.wait()`` joins it.

::

    from vmailkit import Store
    from vmailkit.ui import AccountsPanel, IncomingPanel, MailListPanel, MailReaderPanel, LinkingPanel, PasswordBook

    store, passwords = Store("vmail.duckdb"), PasswordBook()
    AccountsPanel(store, user="anna", passwords=passwords).widget
    IncomingPanel(store, "anna", passwords=passwords).widget
    reader = MailReaderPanel(store, "anna")
    mails = MailListPanel(store, "anna", on_open=reader.open)
    reader.on_change = mails.refresh
"""
from __future__ import annotations

from .accounts import AccountsPanel
from .common import Panel, PasswordBook, Worker
from .incoming import IncomingPanel
from .mail import MailListPanel, MailReaderPanel

__all__ = ["AccountsPanel", "IncomingPanel", "LinkingPanel", "MailListPanel", "MailReaderPanel", "Panel",
           "PasswordBook", "ReplyPanel", "Worker"]


def __getattr__(name: str):  # these need the linking / reply APIs: imported on first use
    if name == "LinkingPanel":
        from .linking import LinkingPanel

        return LinkingPanel
    if name == "ReplyPanel":
        from .reply import ReplyPanel

        return ReplyPanel
    raise AttributeError(name)
