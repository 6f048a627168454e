"""Message references: where one listed message lies on a server, as a typed value.

A :class:`MessageRef` is what ``check`` lists and ``download`` fetches: the account, the folder,
the folder's UIDVALIDITY and the UID (IMAP), or the UIDL (POP3), plus the size the server reported.
It travels unchanged from the listing to the download (Python objects, the panels, the CLI's JSON
and its ``--pick`` text form), so a download fetches exactly what was listed: when the folder was
recreated in between (another UIDVALIDITY) or the message is gone, that pick fails in plain words
instead of fetching another mail.

The text form (for ``vmailkit download --pick``) follows RFC 5092's IMAP URL path::

    office/INBOX;UIDVALIDITY=1700000000;UID=4711      IMAP
    anna-mail;UIDL=000000016b09a83c                   POP3

with the account, the folder and the UIDL percent-encoded (``%2F`` for ``/``, ``%3B`` for ``;``).

A :class:`Watermark` is what a user has already taken from one folder: the UIDVALIDITY and the
biggest UID downloaded (IMAP), or the set of downloaded UIDLs (POP3).
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from .errors import ValidationError

_IMAP_TEXT = re.compile(r"^(?P<account>[^/;]+)/(?P<folder>[^;]*);UIDVALIDITY=(?P<uv>\d+);UID=(?P<uid>\d+)$", re.I)
_POP3_TEXT = re.compile(r"^(?P<account>[^/;]+);UIDL=(?P<uidl>[^;]+)$", re.I)


def _enc(text: str) -> str:
    return quote(text, safe="")


@dataclass(frozen=True)
class MessageRef:
    """One message on a server: account, folder, UIDVALIDITY and UID (IMAP), or UIDL (POP3).

    ``size`` is what the server reported when listing (informational: it takes no part in
    equality). Exactly one of ``uid`` and ``uidl`` is set.
    """

    account: str
    folder: str
    uidvalidity: int
    uid: int | None = None
    uidl: str | None = None
    size: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if (self.uid is None) == (self.uidl is None):
            raise ValidationError("pick", "a message reference has either a UID (IMAP) or a UIDL (POP3)")

    @property
    def key(self) -> str:
        """The UID as text (IMAP) or the UIDL (POP3): the message's name within its folder."""
        return str(self.uid) if self.uid is not None else str(self.uidl)

    @property
    def is_imap(self) -> bool:
        """True for an IMAP message (a UID), False for POP3 (a UIDL)."""
        return self.uid is not None

    def to_text(self) -> str:
        """The ``--pick`` text form (see the module docstring)."""
        if self.uid is not None:
            return f"{_enc(self.account)}/{_enc(self.folder)};UIDVALIDITY={self.uidvalidity};UID={self.uid}"
        return f"{_enc(self.account)};UIDL={_enc(str(self.uidl))}"

    def __str__(self) -> str:
        return self.to_text()

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape printed by ``vmailkit check --format json``."""
        return {"account": self.account, "folder": self.folder, "uidvalidity": self.uidvalidity,
                "uid": self.uid, "uidl": self.uidl, "size": self.size}

    @classmethod
    def from_text(cls, text: str) -> "MessageRef":
        """Read the text form; raises :class:`ValidationError` (field ``pick``) for anything else."""
        value = (text or "").strip()
        m = _IMAP_TEXT.match(value)
        if m:
            return cls(unquote(m["account"]), unquote(m["folder"]), int(m["uv"]), uid=int(m["uid"]))
        m = _POP3_TEXT.match(value)
        if m:
            return cls(unquote(m["account"]), "INBOX", 0, uidl=unquote(m["uidl"]))
        raise ValidationError(
            "pick", f"{value[:80]!r} is not a message reference; copy it from the listing of new mail "
            "(for example office/INBOX;UIDVALIDITY=1700000000;UID=4711 or anna-mail;UIDL=0000001a)")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MessageRef":
        """Read the JSON shape of :meth:`to_dict`; raises :class:`ValidationError` (field ``pick``)."""
        try:
            uid = data.get("uid")
            uidl = data.get("uidl")
            return cls(
                account=str(data["account"]), folder=str(data.get("folder") or "INBOX"),
                uidvalidity=int(data.get("uidvalidity") or 0),
                uid=None if uid is None else int(uid), uidl=None if uidl is None else str(uidl),
                size=int(data.get("size") or 0),
            )
        except (KeyError, TypeError, ValueError):
            raise ValidationError("pick", "a message reference needs account, folder, uidvalidity and uid or uidl") from None

    @classmethod
    def coerce(cls, value: object) -> "MessageRef":
        """A reference from a :class:`MessageRef`, its text form or its dict form."""
        if isinstance(value, MessageRef):
            return value
        if isinstance(value, str):
            return cls.from_text(value)
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise ValidationError("pick", f"{type(value).__name__} is not a message reference")


@dataclass(frozen=True)
class Watermark:
    """What a user has downloaded from one folder: where "new mail" starts.

    IMAP: ``uidvalidity`` and ``last_uid`` (0 before the first download; valid only while the folder
    keeps that UIDVALIDITY). POP3: ``uidls``, the UIDLs already downloaded.
    """

    uidvalidity: int = 0
    last_uid: int = 0
    uidls: frozenset[str] = frozenset()

    @classmethod
    def empty(cls) -> "Watermark":
        """No mail taken yet: everything on the server is new."""
        return cls()


def read_picks_text(text: str) -> list[dict[str, Any]]:
    """The picks in ``text``, as listing rows ``{"ref": MessageRef, "subject": str | None}``.

    ``text`` is the JSON of ``vmailkit check --format json`` (its messages), a JSON list of
    references (objects or text forms), or one text reference per line (blank lines and lines
    starting with ``#`` are ignored). Raises :class:`ValidationError` (field ``pick``) for the
    first entry that is not a reference.
    """
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValidationError("pick", f"the file is not valid JSON (line {exc.lineno}): {exc.msg}") from None
        items = data.get("messages", []) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ValidationError("pick", "the JSON holds no list of messages")
        rows = []
        for item in items:
            if isinstance(item, Mapping) and "ref" in item:
                subject = item.get("subject")
                rows.append({"ref": MessageRef.coerce(item["ref"]), "subject": subject if isinstance(subject, str) else None})
            else:
                rows.append({"ref": MessageRef.coerce(item), "subject": None})
        return rows
    return [{"ref": MessageRef.from_text(line), "subject": None} for line in stripped.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
