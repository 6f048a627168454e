"""The search box's language, translated to a tantivy query by hand (never through tantivy's parser).

Syntax (see docs/search.md):

* ``rooming list``: every word must occur (AND), each in any field;
* ``"rooming list"``: the words next to each other, in this order, within one field (a line break
  between them does not matter); ``“...”`` and ``„...“`` work too; an unclosed quote runs to the end;
* ``room*``: a word starting with ``room``; ``"rooming li*"``: a phrase whose last word starts with ``li``;
* a word with punctuation inside (``check-in``, ``B-756``, ``anna@tour.example``, ``list.pdf``) is a
  phrase of its parts; a hyphenated word also matches its joined spelling (``check-in`` finds
  ``checkin`` and ``checkin`` finds ``check-in``);
* there are no operators: ``AND``, ``OR``, ``NOT``, ``-``, ``+``, ``field:`` and brackets are
  ordinary text (punctuation separates words, ``or`` is a word to find).

Words are folded by the index's analyzer (:func:`vmailkit.search.text.fold`), so case and accents
never matter: ``Zürich`` = ``zurich`` = ``ZÜRICH``, ``Straße`` = ``strasse``.
"""
from __future__ import annotations

from dataclasses import dataclass

import tantivy

from ..errors import ValidationError
from .text import fold, joined_word

#: Fields searched for phrases and words.
TEXT_FIELDS = ("subject", "sender", "body", "attachments")
#: The field holding the joined spellings of hyphenated words (searched for single words only).
COMPOUND_FIELD = "compounds"
#: Longest accepted search text, in characters.
MAX_QUERY_CHARS = 1000
#: Most words and phrases in one search.
MAX_CLAUSES = 32

_QUOTES = '"\u201c\u201d\u201e'


@dataclass(frozen=True)
class Clause:
    """One required part of a search: a word, a phrase, or a prefix of either (tokens are folded)."""

    tokens: tuple[str, ...]
    prefix: bool = False
    joined: str | None = None     # folded joined spelling of a hyphenated word ("checkin")
    quoted: bool = False


def _chunks(text: str) -> list[tuple[str, bool]]:
    """Split the search text into (text, quoted) pieces: quoted phrases and whitespace-separated words."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _QUOTES:
            j = i + 1
            while j < n and text[j] not in _QUOTES:
                j += 1
            out.append((text[i + 1:j], True))
            i = j + 1
        elif c.isspace():
            i += 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _QUOTES:
                j += 1
            out.append((text[i:j], False))
            i = j
    return out


def parse(text: object) -> list[Clause]:
    """The clauses of a search text (all of them must match).

    Raises :class:`ValidationError` (field ``search``) when ``text`` is not a string, is longer
    than :data:`MAX_QUERY_CHARS`, has more than :data:`MAX_CLAUSES` parts, or has no word at all
    (empty, only punctuation or ``*``).
    """
    if not isinstance(text, str):
        raise ValidationError("search", "give the words to search for as text")
    if len(text) > MAX_QUERY_CHARS:
        raise ValidationError("search", f"the search text is longer than {MAX_QUERY_CHARS} characters")
    clauses: list[Clause] = []
    for raw, quoted in _chunks(text):
        body = raw.rstrip()
        prefix = body.endswith("*")
        body = body.rstrip("*")
        tokens = tuple(fold(body))
        if not tokens:
            continue
        joined = None if quoted else joined_word(body)
        clauses.append(Clause(tokens, prefix=prefix, joined=joined, quoted=quoted))
    if not clauses:
        raise ValidationError("search", "give at least one word to search for (letters or digits)")
    if len(clauses) > MAX_CLAUSES:
        raise ValidationError("search", f"too many words and phrases (at most {MAX_CLAUSES})")
    return clauses


def regex_literal(token: str) -> str:
    """``token`` as a regular expression matching exactly itself (tantivy's regex syntax):
    ASCII letters and digits as they are, everything else as ``\\x{...}``."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in token)


def _any(queries: list[tantivy.Query]) -> tantivy.Query:
    if len(queries) == 1:
        return queries[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Should, q) for q in queries])


def clause_query(clause: Clause, schema: tantivy.Schema) -> tantivy.Query:
    """The tantivy query of one clause: the clause in any of the fields."""
    Q = tantivy.Query
    tokens = list(clause.tokens)
    word_fields = (*TEXT_FIELDS, COMPOUND_FIELD)
    parts: list[tantivy.Query] = []
    if len(tokens) == 1:
        if clause.prefix:
            pattern = regex_literal(tokens[0]) + ".*"
            parts += [Q.regex_query(schema, f, pattern) for f in word_fields]
        else:
            parts += [Q.term_query(schema, f, tokens[0]) for f in word_fields]
    else:
        if clause.prefix:
            words = [regex_literal(t) for t in tokens]
            words[-1] += ".*"
            parts += [Q.regex_phrase_query(schema, f, words) for f in TEXT_FIELDS]
        else:
            parts += [Q.phrase_query(schema, f, tokens) for f in TEXT_FIELDS]
        if clause.joined:
            if clause.prefix:
                parts += [Q.regex_query(schema, f, regex_literal(clause.joined) + ".*") for f in word_fields]
            else:
                parts += [Q.term_query(schema, f, clause.joined) for f in word_fields]
    return _any(parts)


def to_query(clauses: list[Clause], schema: tantivy.Schema) -> tantivy.Query:
    """All ``clauses`` as one tantivy query (AND)."""
    queries = [clause_query(c, schema) for c in clauses]
    if len(queries) == 1:
        return queries[0]
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in queries])


def build_query(text: object, schema: tantivy.Schema) -> tantivy.Query:
    """Translate a search text (see the module's docstring) to a tantivy query for ``schema``.

    Raises :class:`ValidationError` (field ``search``) for an unusable text (see :func:`parse`).
    """
    return to_query(parse(text), schema)
