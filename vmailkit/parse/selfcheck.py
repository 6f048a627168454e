"""Import-time self-check of the fast paths of :mod:`vmailkit.parse`.

The tricky samples (``_CHECK_*``) and :func:`_self_check`, which
``vmailkit/parse/__init__.py`` runs once at import: it compares every fast
path and the cheaper MIME parser with the email package of the running
Python and, on any difference, sets ``fastpaths._FAST_PATHS`` to ``False``
and ``mime._Parser`` back to the plain ``Parser``.
"""

from __future__ import annotations

from datetime import timezone
from email import policy as _policy
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser, Parser
from email.utils import parsedate_to_datetime

from . import fastpaths, mime
from .fastpaths import _PARSE_POLICY, _STRICT_HEADERS, _fast_mailboxes, _fast_unstructured
from .headers import _fast_header_items, _strict_date


# --------------------------------------------------------------------------
# Import-time self-check of the fast paths
# --------------------------------------------------------------------------
#
# The fast paths (fastpaths.py, headers.py, mime.py) reproduce what this Python's email package does.  They
# were verified against Python 3.11-3.13 by differential fuzzing; this check
# guards against a future stdlib that behaves differently: it compares every
# fast path with the email package on a set of tricky samples and, on any
# difference (or error), falls back to the plain email package code paths.

_CHECK_CONTENT_TYPES = (
    "text/plain",
    "Text/HTML; Charset=\"UTF-8\"; format=flowed",
    "multipart/mixed;\r\n\tboundary=\"----=_Part_1_2.3\"",
    "multipart/mixed; boundary=----=_Part_1_2.3",
    "text/plain;charset=utf-8;",
    "text/plain ; charset = utf-8 ; name=\"a b.txt\"",
    "application/pdf; name*=utf-8''R%C3%A9sum%C3%A9%20%E2%80%93.pdf",
    "application/pdf; name*=bogus''%E9t%E9.pdf",
    "text/plain; a=\"\"; b=c",
    "text/plain; x=a=b",
    "text/plain; charset=utf-8; charset=latin1",
)
_CHECK_DISPOSITIONS = (
    "attachment",
    "Inline",
    "attachment; filename=\"Rooming list 12345.pdf\"",
    "attachment;filename=x.txt; size=123",
    "attachment; filename*=utf-8''%F0%9F%8C%B4%20x.jpg",
    "attachment filename=x",
)
_CHECK_UNSTRUCTURED = (
    "Booking 12345 rooming list",
    "=?utf-8?q?Buchungsbest=C3=A4tigung?= 12345 =?utf-8?b?4oCTIFppbW1lcmxpc3Rl?=",
    "=?utf-8?B?w7w=?= =?utf-8?Q?ber?=\tx",
    "=?utf-8?q?=C3=A9t=C3=A9?=",
    "=?iso-8859-1?q?caf=E9?=  and =?x-unknown?q?abc?=",
    "Re:  =?utf-8?q?a?=  ",
)
_CHECK_ADDRESSES = (
    "Anna Berg <anna@tour.example>",
    "\"Berg, Anna\" <anna@tour.example>, bob@x.example",
    "=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <j@x.example>",
    "Elena =?utf-8?q?=C3=98degaard?= <e@x.example>",
    "J. Doe <j@d.example>, <x@y.example>",
    "=?us-ascii?q?_?= \"x\" <a@b.example>",
)
_CHECK_DATES = (
    "Mon, 06 Jan 2025 08:33:00 +0100",
    "6 Jan 2025 08:33 -0000",
    "Thu, 01 Jan 1970 00:30:00 +0100",
    "Sat, 29 Feb 2025 10:00:00 +0000",
)
_CHECK_HEADER_BLOCKS = (
    b"From: a@b\r\nTo: c@d,\r\n e@f\r\nSubject: x\r\n",
    b"X-A:\r\nX-B:  v  \r\n\t\r\nX-C:v\xe9",
    b"Subject: a\nX:  b\n \n",
)
_CHECK_MESSAGES = (
    b"From: a@b\r\nContent-Type: multipart/mixed; boundary=\"b(1)+_,-./:=?\"\r\n\r\npreamble\r\n"
    b"--b(1)+_,-./:=?\r\n--b(1)+_,-./:=?  \r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"
    b"--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n--inner\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n"
    b"--inner--\r\n\r\n--b(1)+_,-./:=?\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n"
    b"--b(1)+_,-./:=?\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + b"QUJD\r\n" * 1400 + b"--b(1)+_,-./:=?--\r\nepilogue\r\n",
    b"From nobody Mon Jan  1 00:00:00 2025\n Continued: first\nContent-Type: multipart/digest; boundary=d\n\n"
    b"--d\n\nSubject: digest part\n\nx\n--d\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
    b"Final-Recipient: rfc822; a@b\nAction: failed\n--d\nContent-Type: text/plain\n\nno closing boundary\r",
    b"Content-Type: multipart/mixed; boundary=xx\r\r\rno start boundary\r\r",
    b"Content-Type: multipart/mixed\n\nno boundary parameter\n",
    b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\nContent-Type: text/plain\n\nx\n----\n",
    b"Subject: x\nthis is not a header\n\nbody " + b"y" * 8153 + b"\r\n--b\r\n",
)


def _message_tree(msg: Message) -> tuple[object, ...]:
    payload = msg._payload
    if isinstance(payload, list):
        payload = tuple(_message_tree(part) for part in payload)
    return (
        msg.get_unixfrom(),
        tuple(msg._headers),
        msg.get_default_type(),
        msg.preamble,
        msg.epilogue,
        tuple(type(d).__name__ for d in msg.defects),
        payload,
        msg.get_content_type(),
        msg.get_content_disposition(),
        msg.get_filename(),
        msg.get_content_charset(),
        msg.get_boundary(),
        msg.is_attachment(),
    )


def _fast_paths_agree() -> bool:
    """True if every header fast path gives what the email package gives."""
    default = _policy.default
    for name, values in (("Content-Type", _CHECK_CONTENT_TYPES), ("Content-Disposition", _CHECK_DISPOSITIONS)):
        for value in values:
            header = default.header_fetch_parse(name, value)
            if _STRICT_HEADERS[name.lower()](value) not in (None, str(header)):
                return False
    for value in _CHECK_UNSTRUCTURED:
        if _fast_unstructured(value) not in (None, str(default.header_fetch_parse("Subject", value))):
            return False
    for value in _CHECK_ADDRESSES:
        header = default.header_fetch_parse("To", value)
        expected = [(a.username + ("@" + a.domain if a.domain else ""), a.display_name or "") for a in header.addresses]
        if _fast_mailboxes(value) not in (None, expected):
            return False
    for value in _CHECK_DATES:
        fast = _strict_date(value)
        if fast is not None and fast != parsedate_to_datetime(value).astimezone(timezone.utc):
            return False
    for block in _CHECK_HEADER_BLOCKS:
        fast = _fast_header_items(block)
        if fast is not None and fast != list(BytesHeaderParser(policy=_policy.compat32).parsebytes(block).raw_items()):
            return False
    return True


def _parser_agrees(parser_class: type[Parser]) -> bool:
    """True if ``parser_class`` builds the same trees as the stock BytesParser."""
    for raw in _CHECK_MESSAGES:
        fast = BytesParser(policy=_PARSE_POLICY)
        fast.parser = parser_class(policy=_PARSE_POLICY)
        stock = BytesParser(policy=_policy.default)
        if _message_tree(fast.parsebytes(raw)) != _message_tree(stock.parsebytes(raw)):
            return False
    return True


def _self_check() -> None:
    """Compare the fast paths and the parser with the email package; on any
    difference (or error) switch them off: ``fastpaths._FAST_PATHS = False``,
    ``mime._Parser = Parser``."""
    try:
        ok = _fast_paths_agree()
    except Exception:
        ok = False
    if not ok:
        fastpaths._FAST_PATHS = False
    try:
        ok = mime._Parser is Parser or _parser_agrees(mime._Parser)
    except Exception:
        ok = False
    if not ok:
        mime._Parser = Parser
