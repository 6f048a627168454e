"""Exact fast paths for ``email.policy.default`` header values.

Holds the module-level switch ``_FAST_PATHS`` (turned off by
:mod:`vmailkit.parse.selfcheck` on any difference from the running Python's
email package), the fast paths for unstructured values and mailbox lists
(with their ``policy.default`` fallbacks ``_policy_unstructured`` /
``_policy_mailboxes``), and the fast structural header access for the MIME
parser: ``_FastPolicy`` / ``_FastMessage`` rendering well-formed
Content-Type / Content-Disposition / Content-Transfer-Encoding values
directly, and ``_PARSE_POLICY``.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from email import _encoded_words
from email import policy as _policy
from email._header_value_parser import quote_string as _quote_string
from email.headerregistry import BaseHeader
from email.message import EmailMessage
from email.policy import EmailPolicy
from typing import Callable

from .charsets import _ANY_SURROGATE, _MAX_CACHED_HEADER


# --------------------------------------------------------------------------
# Exact fast paths for policy.default header values
# --------------------------------------------------------------------------
#
# policy.default's header parser costs 10-70 us per value.  The helpers below
# give the very same result for the common, well-formed shapes (pure ASCII,
# RFC 2047 encoded-words as whole whitespace-separated words, plain
# ``Name <a@b>`` / ``"Quoted, Name" <a@b>`` mailboxes) and hand everything
# else to the policy itself.  They decode encoded-words with the function the
# policy uses (email._encoded_words.decode).

# False if the import-time self-check (vmailkit.parse.selfcheck) found a
# difference.  Other modules read it as ``fastpaths._FAST_PATHS`` (never a
# copy), so they all see what the self-check sets.
_FAST_PATHS = True

_STRICT_CHARS = re.compile(r"[\x20-\x7e\t]*")  # printable ASCII, SP, HTAB
_WSP_RUN = re.compile(r"([ \t]+)")
_STRICT_EW = re.compile(r"=\?[^?\s]+\?[QqBb]\?([^?\s]+)\?=")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_ADJACENT_WORDS = re.compile(r"\?=\s+=\?")


def _strict_encoded_word(word: str) -> str | None:
    """What the policy's parser decodes the whole-word encoded-word ``word`` to.

    ``None`` if ``word`` is not a well-formed encoded-word or does not decode
    cleanly (those cases are left to the policy).
    """
    m = _STRICT_EW.fullmatch(word)
    if m is None:
        return None
    payload = m.group(1)
    # get_encoded_word() splits at the first "?=": one right after the
    # encoding letter is only re-joined when two hex digits follow.
    if payload[0] == "=" and not (len(payload) >= 3 and payload[1] in _HEXDIGITS and payload[2] in _HEXDIGITS):
        return None
    try:
        text = _encoded_words.decode(word)[0]
    except Exception:
        return None
    if _ANY_SURROGATE.search(text):
        return None
    return text


def _fast_unstructured(text: str) -> str | None:
    """``str(policy.default.header_fetch_parse("Subject", text))`` for an
    unfolded ``text`` without surrogates, or ``None`` if outside the fast path."""
    if "=?" not in text:
        return text  # the unstructured parser is lossless without encoded-words
    if not _STRICT_CHARS.fullmatch(text):
        return None
    parts = _WSP_RUN.split(text)  # word, ws, word, ..., word
    out: list[str] = []
    prev_ew = False
    for i in range(0, len(parts), 2):
        word = parts[i]
        is_ew = False
        if "=?" in word:
            decoded = _strict_encoded_word(word)
            if decoded is None:
                return None
            is_ew = True
            word = decoded
        if i:
            if not (prev_ew and is_ew):  # whitespace between encoded-words is dropped
                out.append(parts[i - 1])
        out.append(word)
        prev_ew = is_ew
    return "".join(out)


def _policy_unstructured(text: str) -> str:
    """``str(policy.default.header_fetch_parse("Subject", text))`` (raises like it)."""
    value = _fast_unstructured(text) if _FAST_PATHS else None
    if value is not None:
        return value
    return str(_policy.default.header_fetch_parse("Subject", text))


_ATEXT_EQ = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"  # RFC 5322 atext
_STRICT_ADDR_SPEC = r"([A-Za-z0-9!#$%&'*+/?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/?^_`{|}~-]+)*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
_STRICT_MAILBOX = re.compile(
    r"[ \t]*(?:"
    rf"({_ATEXT_EQ}(?:{_ATEXT_EQ}|[ \t.]|\"[^\"\\]*\")*|\"[^\"\\]*\"(?:{_ATEXT_EQ}|[ \t.]|\"[^\"\\]*\")*)<{_STRICT_ADDR_SPEC}>"
    rf"|<{_STRICT_ADDR_SPEC}>"
    rf"|{_STRICT_ADDR_SPEC}"
    r")[ \t]*(,|$)"
)
_PHRASE_TOKEN = re.compile(rf"[ \t]+|\"[^\"\\]*\"|\.|{_ATEXT_EQ}+")
_DISPLAY_WS = re.compile(r"[ \t]+")


def _strict_display_name(phrase: str) -> str | None:
    """``display_name`` the policy's parser gives the phrase before ``<addr>``."""
    tokens = _PHRASE_TOKEN.findall(phrase)
    if tokens[-1] == ".":
        return None  # the policy's DisplayName.display_name raises on a trailing "."
    if tokens[-1][0] in " \t":
        tokens.pop()  # the policy strips the whitespace around the phrase
    values: list[str] = []
    for tok in tokens:
        first = tok[0]
        if first in " \t":
            values.append(" ")  # folding whitespace counts as one space
        elif first == '"':
            if "=?" in tok:
                return None
            values.append(tok[1:-1])
        elif "=?" in tok:
            decoded = _strict_encoded_word(tok)
            if decoded is None or any(c.isspace() and c not in " \t" for c in decoded):
                return None
            values.append(_DISPLAY_WS.sub(" ", decoded))
        else:
            values.append(tok)
    return "".join(values)


def _fast_mailboxes(text: str) -> list[tuple[str, str]] | None:
    """``[(username@domain, display_name or "")]`` of the policy's address
    header for a well-formed mailbox list, or ``None`` if outside the fast path."""
    if not _STRICT_CHARS.fullmatch(text) or _ADJACENT_WORDS.search(text):
        return None
    result: list[tuple[str, str]] = []
    pos = 0
    end = len(text)
    while True:
        m = _STRICT_MAILBOX.match(text, pos)
        if m is None:
            return None
        phrase, local1, domain1, local2, domain2, local3, domain3, sep = m.groups()
        if phrase is not None:
            display = _strict_display_name(phrase)
            if display is None:
                return None
            result.append((f"{local1}@{domain1}", display))
        elif local2 is not None:
            result.append((f"{local2}@{domain2}", ""))
        else:
            result.append((f"{local3}@{domain3}", ""))
        pos = m.end()
        if not sep:
            return result
        if pos >= end:  # trailing comma
            return None


def _policy_mailboxes(name: str, text: str) -> list[tuple[str, str]]:
    """``(username@domain or username, display_name or "")`` of every address of
    ``policy.default.header_fetch_parse(name, text)`` (raises like it)."""
    fast = _fast_mailboxes(text) if _FAST_PATHS else None
    if fast is not None:
        return fast
    header = _policy.default.header_fetch_parse(name, text)
    return [(a.username + ("@" + a.domain if a.domain else ""), a.display_name or "") for a in header.addresses]


# --------------------------------------------------------------------------
# Fast structural header access for the MIME parser
# --------------------------------------------------------------------------
#
# email.policy.default parses a header through its header registry every time
# it is read: Message.get_content_type() (called ~14 times per message by the
# feed parser, get_body() and this module) re-parses Content-Type each time,
# which costs ~35 us per call.  Every Message method the parser and this
# module use (get_content_type, get_param, get_boundary, get_filename,
# get_content_charset, get_content_disposition, ...) only looks at ``str()``
# of the header object, which for the MIME headers is the value with its
# parameters *re-rendered* by the policy's parser (``; name="value"``, RFC
# 2231 decoded, duplicates dropped, junk dropped, ...).  _FastPolicy returns
# exactly that string, computed directly for well-formed values (strict
# grammar below) and taken from the real (memoised) header object otherwise,
# so the parsed structure and every value read from it are the same as with
# policy.default.  EmailMessage.is_attachment(), the one method that reads a
# header attribute instead of str(), is adapted in _FastMessage.

_TOKEN_CHARS = r"!#$%&'*+\-.^_`{|}~0-9A-Za-z"  # RFC 2045 token: printable ASCII minus tspecials
_ATTR_CHARS = r"!#$&+\-.^_`{|}~0-9A-Za-z"  # token minus * ' %
_XVAL_CHARS = r"!#$%&+\-.^_`{|}~0-9A-Za-z"  # token minus * '
_CT_PREFIX = re.compile(rf"[ \t]*[{_TOKEN_CHARS}]+[ \t]*/[ \t]*[{_TOKEN_CHARS}]+[ \t]*")
_CD_PREFIX = re.compile(rf"[ \t]*([{_TOKEN_CHARS}]+)[ \t]*")
_STRICT_PARAM = re.compile(
    rf"[ \t]*([{_ATTR_CHARS}]+)"
    rf"(?:[ \t]*=[ \t]*(?:([{_XVAL_CHARS}]+)|\"([^\"\\]*)\")"  # name=token / name="quoted"
    rf"|\*=([{_XVAL_CHARS}]*)'([{_ATTR_CHARS}]*)'([{_XVAL_CHARS}]+))"  # name*=charset'lang'pct-value
    rf"[ \t]*(;|$)"
)
_OWS_END = re.compile(r"[ \t]*$")
_LINESEP = re.compile(r"\n|\r")  # what EmailPolicy.header_fetch_parse removes


def _render_extended(charset: str, value: str) -> str:
    """An RFC 2231 ``charset'lang'value`` as the policy's MimeParameters decodes it."""
    raw = urllib.parse.unquote_to_bytes(value)
    try:
        return raw.decode(charset, "surrogateescape")
    except (LookupError, UnicodeEncodeError):
        return raw.decode("us-ascii", "surrogateescape")


def _strict_mime_str(value: str, prefix: re.Pattern[str]) -> str | None:
    """``str(policy.default.header_fetch_parse(name, value))`` for a well-formed
    Content-Type (``prefix`` = _CT_PREFIX) or Content-Disposition (_CD_PREFIX)
    value; ``None`` when the value is outside the strict grammar."""
    if "\r" in value or "\n" in value:
        value = "".join(_LINESEP.split(value))
    if not _STRICT_CHARS.fullmatch(value) or "=?" in value or "\\" in value:
        return None
    m = prefix.match(value)
    if m is None:
        return None
    pos = m.end()
    end = len(value)
    if pos == end:
        return value
    if value[pos] != ";":
        return None
    head = value[: pos + 1]
    pos += 1
    rendered: list[str] = []
    seen: set[str] = set()
    while pos < end:
        m = _STRICT_PARAM.match(value, pos)
        if m is None:
            if _OWS_END.match(value, pos):
                break
            return None
        name, token, quoted, charset, _lang, extended = m.groups()[:6]
        if name in seen:  # duplicates: the policy's rules are intricate
            return None
        seen.add(name)
        if extended is not None:
            try:
                val = _render_extended(charset, extended)
            except Exception:
                return None
        else:
            val = token if token is not None else quoted
        rendered.append(f"{name}={_quote_string(val)}" if val else name)
        pos = m.end()
        if not m.group(7):  # end of value
            break
    result = head + (" " + "; ".join(rendered) if rendered else "")
    if _ANY_SURROGATE.search(result):
        result = result.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return result


def _strict_cte_str(value: str) -> str | None:
    if "\r" in value or "\n" in value:
        value = "".join(_LINESEP.split(value))
    m = _CD_PREFIX.fullmatch(value)
    return value if m is not None else None


_STRICT_HEADERS: dict[str, Callable[[str], str | None]] = {
    "content-type": lambda v: _strict_mime_str(v, _CT_PREFIX),
    "content-disposition": lambda v: _strict_mime_str(v, _CD_PREFIX),
    "content-transfer-encoding": _strict_cte_str,
}


@functools.lru_cache(maxsize=4096)
def _strict_header_cached(lname: str, value: str) -> str | None:
    return _STRICT_HEADERS[lname](value)


@functools.lru_cache(maxsize=256)
def _policy_header_cached(name: str, value: str) -> object:
    return _policy.default.header_fetch_parse(name, value)


def _policy_header(name: str, value: str) -> object:
    """``policy.default.header_fetch_parse(name, value)`` (memoised; raises like it)."""
    if len(value) <= _MAX_CACHED_HEADER:
        return _policy_header_cached(name, value)
    return _policy.default.header_fetch_parse(name, value)


class _FastPolicy(EmailPolicy):
    """policy.default with cheap header reads (see the section comment)."""

    def header_fetch_parse(self, name, value):  # noqa: ANN001, ANN201 - Policy API
        if hasattr(value, "name"):
            return value
        lname = name.lower()
        if _FAST_PATHS and lname in _STRICT_HEADERS:
            if len(value) <= _MAX_CACHED_HEADER:
                text = _strict_header_cached(lname, value)
            else:
                text = _STRICT_HEADERS[lname](value)
            if text is not None:
                return text
        return _policy_header(name, value)


class _FastMessage(EmailMessage):
    """EmailMessage whose structural headers read as plain strings."""

    def is_attachment(self) -> bool:
        c_d = self.get("content-disposition")
        if c_d is None:
            return False
        if isinstance(c_d, BaseHeader):
            return c_d.content_disposition == "attachment"
        m = _CD_PREFIX.match(c_d)  # a strict value: the token is the disposition
        return m is not None and m.group(1).lower() == "attachment"


_PARSE_POLICY = _FastPolicy(message_factory=_FastMessage)
