"""The MIME structure parser of :mod:`vmailkit.parse`.

``email.parser.Parser`` running the unchanged stdlib FeedParser code, made
cheaper: its functions are rebound (``_rebind``) to copies of their module
namespaces holding an equivalent line buffer (``_LineBuffer``), boundary
matcher (``_BoundaryRegex``) and end-of-line search (``_TailEol``).  Holds
``_Parser`` (reset to the plain ``Parser`` by :mod:`vmailkit.parse.selfcheck`
if it parses anything differently) and ``_parse_bytes``.
"""

from __future__ import annotations

import re
import types
from email import feedparser as _feedparser
from email import parser as _email_parser
from email.message import Message
from email.parser import BytesParser, Parser
from typing import Callable

from .fastpaths import _PARSE_POLICY


class _TailEol:
    """Drop-in for the feed parser's ``NLCRE_eol`` (``(\\r\\n|\\r|\\n)\\Z``).

    The parser searches whole part payloads with it to strip the line break
    before a boundary; the regex tries every position of the payload (~3.5 ms
    per MB).  A match can only start in the last two characters, so searching
    from there gives the very same match object.
    """

    def __init__(self, pattern: re.Pattern[str]):
        self._pattern = pattern

    def search(self, string: str, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        if endpos is not None:
            return self._pattern.search(string, pos, endpos)
        return self._pattern.search(string, max(pos, len(string) - 2))


def _rebind(func: Callable[..., object], namespace: dict[str, object]) -> Callable[..., object]:
    """A copy of ``func`` (same code) that looks up its globals in ``namespace``."""
    copy = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__)
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__ = func.__qualname__
    copy.__doc__ = func.__doc__
    return copy


_BOUNDARY_PREFIX = "(?P<sep>"
_BOUNDARY_TAIL = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
_BOUNDARY_TAIL_RE = re.compile(_BOUNDARY_TAIL[1:])
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


class _BoundaryRegex:
    """``re.compile("(?P<sep>" + re.escape(separator) + _BOUNDARY_TAIL)``
    without the compile cost (~75 us for every multipart).

    ``match(line)`` matches exactly where that regex matches; the match object
    has its ``end``, ``ws`` and ``linesep`` groups (all the feed parser reads).
    """

    __slots__ = ("separator", "_length")

    def __init__(self, separator: str):
        self.separator = separator
        self._length = len(separator)

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _BOUNDARY_TAIL_RE.match(line, self._length)


def _compile_for_feedparser(pattern: str, flags: int = 0) -> re.Pattern[str] | _BoundaryRegex:
    """``re.compile`` as the feed parser calls it: its boundary regexes become
    :class:`_BoundaryRegex`, anything else is compiled normally."""
    if not flags and pattern.startswith(_BOUNDARY_PREFIX) and pattern.endswith(_BOUNDARY_TAIL):
        escaped = pattern[len(_BOUNDARY_PREFIX) : len(pattern) - len(_BOUNDARY_TAIL)]
        separator = _UNESCAPE.sub(r"\1", escaped)
        if re.escape(separator) == escaped:
            return _BoundaryRegex(separator)
    return re.compile(pattern, flags)


def _matcher_first_chars(pred: Callable[[str], object]) -> frozenset[str] | None:
    """First characters a line must start with for the feed parser's false-EOF
    predicate ``pred`` to match it; ``None`` if unknown.

    The parser only pushes ``NLCRE.match`` (blank line) and the ``match`` of
    its multipart boundary regex (``(?P<sep>--boundary)...``).
    """
    pattern = getattr(pred, "__self__", None)
    if getattr(pred, "__name__", None) != "match":
        return None
    if isinstance(pattern, _BoundaryRegex):
        return frozenset(pattern.separator[:1]) if pattern.separator else None
    if not isinstance(pattern, re.Pattern):
        return None
    if pattern.pattern == _feedparser.NLCRE.pattern and pattern.flags == _feedparser.NLCRE.flags:
        return frozenset("\r\n")
    if pattern.pattern.startswith("(?P<sep>" + re.escape("--")) and not pattern.flags & re.IGNORECASE:
        return frozenset("-")
    return None


class _LineBuffer(_feedparser.BufferedSubFile):
    """The feed parser's line buffer, iterated by a generator.

    ``for line in buffer`` (how the parser reads every body line) otherwise
    costs two Python calls per line (``__next__`` + ``readline``) plus a
    regex call per false-EOF predicate.  This generator does exactly what
    they do -- pop the next line, stop at a false EOF (pushing the line back)
    or at the end, hand out ``NeedMoreData`` while waiting for input -- and
    skips the predicates for lines that cannot match them (see
    :func:`_matcher_first_chars`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._eof_starts: frozenset[str] | None = frozenset()

    def _update_eof_starts(self) -> None:
        starts: set[str] = set()
        for pred in self._eofstack:
            first = _matcher_first_chars(pred)
            if first is None:
                self._eof_starts = None
                return
            starts |= first
        self._eof_starts = frozenset(starts)

    def push_eof_matcher(self, pred):  # noqa: ANN001, ANN201 - BufferedSubFile API
        super().push_eof_matcher(pred)
        self._update_eof_starts()

    def pop_eof_matcher(self):  # noqa: ANN201 - BufferedSubFile API
        pred = super().pop_eof_matcher()
        self._update_eof_starts()
        return pred

    def __iter__(self):  # noqa: ANN204 - iterator protocol
        return self._iter_lines()

    def _iter_lines(self):  # noqa: ANN202 - generator of str / NeedMoreData
        lines = self._lines
        eofstack = self._eofstack
        need_more = _feedparser.NeedMoreData
        while True:
            if not lines:
                if self._closed:
                    return
                yield need_more
                continue
            line = lines.popleft()
            if eofstack:
                starts = self._eof_starts
                if starts is None or line[:1] in starts:
                    for ateof in reversed(eofstack):
                        if ateof(line):
                            lines.appendleft(line)
                            return
            if line == "":  # an unread "" (EOF) line: readline() returns it, __next__ stops
                return
            yield line


def _make_parser_class() -> type[Parser]:
    """``email.parser.Parser`` running the stdlib FeedParser, made cheaper.

    The stdlib code is used unchanged: ``FeedParser.__init__``,
    ``_parsegen``, ``_parse_headers`` and ``Parser.parse`` are rebound to
    copies of their module namespaces in which ``NLCRE_eol`` is a
    :class:`_TailEol`, ``BufferedSubFile`` is :class:`_LineBuffer`,
    ``re.compile`` gives :class:`_BoundaryRegex` for boundary regexes and
    ``FeedParser`` is the resulting class (nothing is patched globally).
    Falls back to the plain Parser if the stdlib does not look as expected
    (and :func:`_self_check` falls back if it parses anything differently).
    """
    try:
        eol = _feedparser.NLCRE_eol
        if not isinstance(eol, re.Pattern) or eol.pattern != r"(\r\n|\r|\n)\Z":
            return Parser
        base = _feedparser.FeedParser
        fp_namespace = dict(vars(_feedparser))
        fp_namespace["NLCRE_eol"] = _TailEol(eol)
        fp_namespace["BufferedSubFile"] = _LineBuffer
        fp_namespace["re"] = types.SimpleNamespace(compile=_compile_for_feedparser, escape=re.escape)
        feed_parser = type(
            "_FeedParser",
            (base,),
            {name: _rebind(getattr(base, name), fp_namespace) for name in ("__init__", "_parsegen", "_parse_headers")},
        )
        parser_namespace = dict(vars(_email_parser))
        parser_namespace["FeedParser"] = feed_parser
        return type("_Parser", (Parser,), {"parse": _rebind(Parser.parse, parser_namespace)})
    except Exception:  # pragma: no cover - unexpected stdlib layout
        return Parser


# Set back to the plain Parser by selfcheck._self_check() (as ``mime._Parser``)
# if it parses anything differently; _parse_bytes reads this module global.
_Parser = _make_parser_class()


def _parse_bytes(data: bytes) -> Message:
    """``BytesParser(policy=policy.default).parsebytes(data)``, faster.

    The same BytesParser.parsebytes, with :data:`_PARSE_POLICY` and a
    :data:`_Parser` underneath.
    """
    parser = BytesParser(policy=_PARSE_POLICY)
    parser.parser = _Parser(policy=_PARSE_POLICY)
    return parser.parsebytes(data)
