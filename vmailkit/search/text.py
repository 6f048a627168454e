"""Text for the search index: the analyzer, HTML to text, and the joined forms of hyphenated words.

* :func:`analyzer` is the one analyzer of indexed text and of query words: tantivy's simple
  tokenizer (a word is a run of letters and digits; everything else separates words), lower case,
  ASCII folding (``Zürich`` → ``zurich``, ``ß`` → ``ss``, ``Æ`` → ``ae``). No stemming, no stop words.
* :func:`html_to_text` keeps the text a reader sees in an HTML body: no tags, no attribute values,
  nothing of ``<script>``, ``<style>`` or ``<template>``; block tags and ``<br>`` separate words,
  inline tags (``<b>``, ``<span>``, ``<a>``, ...) do not.
* :func:`compound_forms` joins hyphenated words (``check-in`` → ``checkin``, ``e-mail`` → ``email``)
  and words hyphenated at a line wrap (``accommo-⏎dation`` → ``accommodation``) so that the joined
  spelling finds them too.

Only the standard library and tantivy are used (``vmailkit.reply.html_to_text`` is not reused:
the search package may import only the store and the errors).
"""
from __future__ import annotations

import html as _html
import re
from functools import lru_cache
from html.parser import HTMLParser

import tantivy

#: The name the analyzer is registered under in every index (it is written into the schema).
ANALYZER_NAME = "vmk_fold"

#: Text beyond this many characters of one body (plain or HTML) is not indexed.
MAX_FIELD_CHARS = 2_000_000

# Characters that are invisible inside a word: soft hyphen, zero-width (non-)joiner, word joiner,
# byte order mark. Removed before analysis so that "Zim\u00admer" stays one word.
_INVISIBLE = re.compile("[\u00ad\u200c\u200d\u2060\ufeff]")

# A hyphenated word: word characters joined by hyphens, a hyphen possibly followed by a line break
# (and the quote marks and indentation of the next line).
_COMPOUND = re.compile(r"(?<!\w)\w+(?:-(?:[ \t]*\r?\n[ \t>]*)?\w+)+")
_JOINERS = re.compile(r"-[ \t]*(?:\r?\n[ \t>]*)?")


@lru_cache(maxsize=1)
def analyzer() -> tantivy.TextAnalyzer:
    """The analyzer of index and query: simple tokenizer, lowercase, ASCII folding (built once)."""
    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
            .filter(tantivy.Filter.lowercase())
            .filter(tantivy.Filter.ascii_fold())
            .build())


def clean(text: str | None, limit: int = MAX_FIELD_CHARS) -> str:
    """``text`` (``""`` for None) cut to ``limit`` characters, without invisible in-word characters."""
    if not text:
        return ""
    text = text[:limit]
    return _INVISIBLE.sub("", text) if _INVISIBLE.search(text) else text


def fold(text: str) -> list[str]:
    """The words of ``text`` as the index holds them (``"Straße-Zürich"`` → ``["strasse", "zurich"]``)."""
    return list(analyzer().analyze(clean(text)))


def compound_forms(text: str) -> list[str]:
    """The joined spellings of the hyphenated words in ``text``, in order, not folded.

    ``"late check-in, e-mail"`` → ``["checkin", "email"]``; a word hyphenated at a line wrap,
    ``"accommo-\\ndation"`` → ``["accommodation"]``.
    """
    return [_JOINERS.sub("", m.group(0)) for m in _COMPOUND.finditer(text)] if "-" in text else []


def joined_word(text: str) -> str | None:
    """The folded joined form when ``text`` (punctuation around it aside) is one hyphenated word,
    else None: ``"(Check-in)"`` → ``"checkin"``, ``"rooming"`` → None, ``"a-b c"`` → None."""
    core = re.sub(r"^\W+|\W+$", "", text)
    if not _COMPOUND.fullmatch(core) or "\n" in core:
        return None
    words = fold(_JOINERS.sub("", core))
    return words[0] if len(words) == 1 else None


# -- HTML -------------------------------------------------------------------------------------
#: Tags whose content is never shown as text.
_SKIP = frozenset({"script", "style", "template"})
#: Tags that do not separate words (formatting inside running text: ``Z<b>ü</b>rich`` is one word).
_INLINE = frozenset({
    "a", "abbr", "acronym", "b", "bdi", "bdo", "big", "blink", "cite", "code", "data", "del", "dfn", "em",
    "font", "i", "ins", "kbd", "mark", "nobr", "o:p", "q", "s", "samp", "small", "span", "strike", "strong",
    "sub", "sup", "time", "tt", "u", "var", "wbr",
})


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML document (see :func:`html_to_text`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag not in _INLINE:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _SKIP and tag not in _INLINE:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag not in _INLINE:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_TAG = re.compile(r"<[^>]*>")
_SKIPPED_BLOCK = re.compile(r"(?is)<(script|style|template)\b.*?</\1\s*>")


def html_to_text(html: str | None, limit: int = MAX_FIELD_CHARS) -> str:
    """The visible text of an HTML body, for indexing (not for display).

    Tags and attribute values are dropped, as is everything inside ``<script>``, ``<style>`` and
    ``<template>`` and in comments; character references are decoded. Block-level tags, ``<br>``
    and ``<img>`` separate words (a line break); inline tags do not. Only the first ``limit``
    characters of ``html`` are read. Never raises for malformed HTML.
    """
    if not html:
        return ""
    html = html[:limit]
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # html.parser is lenient; this is a last resort for pathological input
        text = _html.unescape(_TAG.sub("\n", _SKIPPED_BLOCK.sub("\n", html)))
    return clean(text)
