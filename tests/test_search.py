"""Full-text search (issue 12): the tantivy index beside the DuckDB file, caught up from the store."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailfactory import make_mail
from vmailkit import Store, ValidationError, make_account
from vmailkit.ingest import save_received
from vmailkit.search import (
    MailIndex,
    SearchIndexBusy,
    SearchIndexError,
    compound_forms,
    fold,
    html_to_text,
    index_path,
    search_mail,
)
from vmailkit.search.index import META_FILE
from vmailkit.store.searchdocs import SearchDocsMixin

# The store with the search reads (vmailkit.store.Store gets SearchDocsMixin as a base).
S = Store if issubclass(Store, SearchDocsMixin) else type("S", (Store, SearchDocsMixin), {})

ROOT = Path(__file__).resolve().parents[1]


def html_mail(n: int, html: str, subject: str = "Newsletter") -> bytes:
    """An HTML-only mail (no text/plain part)."""
    head = (f"From: News <news@letter.example>\r\nTo: office@tour.example\r\nSubject: {subject}\r\n"
            f"Date: Mon, 2 Nov 2026 10:{n:02d}:00 +0000\r\nMessage-ID: <html{n}@letter.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    return (head + html.replace("\n", "\r\n") + "\r\n").encode("utf-8")


def attachment_mail(n: int, filename: str, body: str = "Please see the file.") -> bytes:
    """A mail with one attachment named ``filename`` (RFC 2231 encoded, so that it may hold umlauts)."""
    from urllib.parse import quote
    return (
        "From: Desk <desk@hotelsol.example>\r\nTo: office@tour.example\r\nSubject: The file\r\n"
        f"Date: Mon, 2 Nov 2026 11:{n:02d}:00 +0000\r\nMessage-ID: <att{n}@hotelsol.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n'
        f"{body}\r\n--B\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Disposition: attachment; filename*=utf-8''{quote(filename)}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--B--\r\n"
    ).encode("utf-8")


NEWSLETTER = """<html><head><title>Offers</title>
<style>.hiddenstyleword { color: red }</style>
<script>var hiddenscriptword = "x";</script></head>
<body><p>Our <b>Panorama</b> cruise on the <span>Lake</span> of Lucerne</p>
<img src="cid:logo" alt="hiddenaltword"><a href="https://hiddenlinkword.example/">Book now</a>
<table><tr><td>Gondola</td><td>Funicular</td></tr></table>
<!-- hiddencommentword --></body></html>"""

MAILS = {
    "zurich": make_mail(1, subject="Excursion", body="Ausflug nach Zürich am Montag.\nGrüße an der Straße"),
    "zurich_plain": make_mail(2, subject="Trip", body="A day trip to zurich and the STRASSE of shops"),
    "rooming": make_mail(3, subject="Booking 703", body="Dear team,\nplease find the rooming\nlist attached.\nRegards"),
    "checkin": make_mail(4, subject="Arrival", body="Late check-in after 22:00; write an e-mail.\n"
                                                      "We confirm the accommo-\ndation for two nights."),
    "html": html_mail(5, NEWSLETTER),
    "attachment": attachment_mail(6, "Zimmerliste_Müller.xlsx"),
    "other": make_mail(7, subject="Invoice", body="The invoice for the gondola transfer is paid."),
}


def new_store(path: Path) -> Store:
    store = S(path, lock_timeout=2.0)
    store.add_user("anna")
    store.add_account(make_account("office", kind="general", protocol="imap", host="h", security="ssl",
                                   address="o@x.example", secret="env:X"))
    return store


def save(store: Store, mails: dict[str, bytes], first_uid: int = 1) -> dict[str, int]:
    """Store ``mails`` as a download would; returns their email ids by name."""
    names = list(mails)
    result = save_received(store, "anna", "office", [(str(first_uid + i), mails[n]) for i, n in enumerate(names)])
    return {n: result.by_key[str(first_uid + i)] for i, n in enumerate(names)}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return new_store(tmp_path / "v.duckdb")


@pytest.fixture
def indexed(store: Store) -> tuple[Store, MailIndex, dict[str, int]]:
    ids = save(store, MAILS)
    index = MailIndex.for_store(store)
    assert index.catch_up(store) == len(MAILS)
    return store, index, ids


def found(index: MailIndex, text: str) -> set[int]:
    return set(index.search(text).ids)


# -- what is found and what is not --------------------------------------------------------------
def test_html_only_mail_is_found_by_its_visible_words_only(indexed):
    store, index, ids = indexed
    html = ids["html"]
    assert found(index, "panorama") == {html}
    assert found(index, "lucerne") == {html}
    assert found(index, "funicular") == {html}                    # table cells separate words
    assert found(index, '"gondola funicular"') == {html}
    assert found(index, "gondola") == {html, ids["other"]}
    for hidden in ("hiddenstyleword", "hiddenscriptword", "hiddenaltword", "hiddenlinkword", "hiddencommentword",
                   "href", "img", "cid", "logo"):
        assert found(index, hidden) == set(), hidden


def test_attachment_is_found_by_its_file_name(indexed):
    store, index, ids = indexed
    att = ids["attachment"]
    assert found(index, "zimmerliste") == {att}
    assert found(index, "Zimmerliste_Müller.xlsx") == {att}
    assert found(index, "muller xlsx") == {att}
    assert found(index, "xlsx") == {att}
    assert found(index, "list.pdf") == set()


def test_accents_fold_both_ways(indexed):
    store, index, ids = indexed
    both = {ids["zurich"], ids["zurich_plain"]}
    for text in ("zurich", "Zürich", "ZÜRICH", "zürich", "ZURICH"):
        assert found(index, text) == both, text
    assert found(index, "Grusse") == found(index, "GRÜSSE") == {ids["zurich"]}


def test_sharp_s_and_ss_fold_both_ways(indexed):
    store, index, ids = indexed
    both = {ids["zurich"], ids["zurich_plain"]}
    for text in ("Straße", "strasse", "STRASSE", "STRAẞE"):
        assert found(index, text) == both, text


def test_phrase_across_a_line_wrap_and_word_order(indexed):
    store, index, ids = indexed
    assert found(index, '"rooming list"') == {ids["rooming"]}
    assert found(index, '"Rooming List"') == {ids["rooming"]}
    assert found(index, '"list rooming"') == set()                # wrong order
    assert found(index, '"rooming attached"') == set()            # not next to each other
    assert found(index, "list rooming") == {ids["rooming"]}       # as words: any order


def test_hyphenated_words(indexed):
    store, index, ids = indexed
    mail = {ids["checkin"]}
    for text in ("check-in", "Check-In", '"check in"', "check in", "checkin", "CHECKIN", "(check-in)"):
        assert found(index, text) == mail, text
    assert found(index, "e-mail") == found(index, "email") == found(index, '"e mail"') == mail
    assert found(index, "accommodation") == mail                  # hyphenated at a line wrap
    assert found(index, "accommo-dation") == mail
    assert found(index, '"check out"') == set()


def test_prefixes(indexed):
    store, index, ids = indexed
    assert found(index, "room*") == {ids["rooming"]}
    assert found(index, "ZÜR*") == {ids["zurich"], ids["zurich_plain"]}   # folded like the index
    assert found(index, "accommod*") == {ids["checkin"]}
    assert found(index, "check-i*") == {ids["checkin"]}
    assert found(index, "checki*") == {ids["checkin"]}                   # the joined spelling
    assert found(index, '"rooming li*"') == {ids["rooming"]}
    assert found(index, "zimmerl*") == {ids["attachment"]}
    assert found(index, "zzz*") == set()
    assert found(index, "room* zur*") == set()                            # AND with prefixes


def test_words_are_anded_and_never_leak_between_mails(indexed):
    store, index, ids = indexed
    assert found(index, "invoice") == {ids["other"]}
    assert found(index, "invoice zurich") == set()               # each word is in another mail
    assert found(index, "gondola paid") == {ids["other"]}
    assert found(index, "gondola panorama") == {ids["html"]}
    assert found(index, "rooming") == {ids["rooming"]}
    assert found(index, "Booking 703") == {ids["rooming"]}
    assert found(index, "booking") == {ids["rooming"]}            # the subject
    assert found(index, "hotelsol") == {ids[n] for n in ("zurich", "zurich_plain", "rooming", "checkin", "other",
                                                          "attachment")}
    assert found(index, "reservas@hotelsol.example") == {ids[n] for n in ("zurich", "zurich_plain", "rooming",
                                                                        "checkin", "other")}
    assert found(index, '"Hotel Sol"') == found(index, "reservas@hotelsol.example")     # the sender's name
    assert found(index, "or") == set() and found(index, "invoice OR zurich") == set()   # no operators


def test_a_phrase_never_spans_two_fields(store):
    ids = save(store, {"a": make_mail(1, subject="Meeting Geneva", body="Lausanne office\nbye")})
    index = MailIndex.for_store(store)
    index.catch_up(store)
    assert found(index, '"meeting geneva"') == {ids["a"]}
    assert found(index, '"geneva lausanne"') == set()


@pytest.mark.parametrize("text", ["", "   ", "!!! --- ???", '""', '" "', "*", "** ...", "\u201e\u201c"])
def test_a_search_without_words_is_refused(indexed, text):
    store, index, ids = indexed
    with pytest.raises(ValidationError) as err:
        index.search(text)
    assert err.value.field == "search"


def test_bad_search_arguments(indexed):
    store, index, ids = indexed
    with pytest.raises(ValidationError) as err:
        index.search("x" * 1001)
    assert err.value.field == "search"
    with pytest.raises(ValidationError) as err:
        index.search(" ".join(f"w{i}" for i in range(40)))
    assert err.value.field == "search"
    with pytest.raises(ValidationError) as err:
        index.search(None)  # type: ignore[arg-type]
    assert err.value.field == "search"
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValidationError) as err:
            index.search("zurich", limit=bad)  # type: ignore[arg-type]
        assert err.value.field == "limit"
    with pytest.raises(ValidationError):
        index.search("zurich", order="oldest")  # type: ignore[arg-type]


def test_user_text_is_never_tantivy_syntax(indexed):
    store, index, ids = indexed
    # tantivy's parser would read these as fields, ranges, boosts, regexes or a syntax error
    for text in ("subject:invoice", "invoice^5", "[a TO z]", "/inv.*/", "invoice)", "+invoice -zurich",
                 "email_id:1", "IN [1 2]", "invoice~2", "a:b:c", "invoice AND (zurich OR"):
        index.search(text)                                       # no exception, no surprise
    for text in ("((", "\\", "'", ":", "~", "^", "*:*"):
        with pytest.raises(ValidationError):
            index.search(text)
    assert found(index, "subject:invoice") == set()              # the phrase "subject invoice": nowhere
    assert found(index, "invoice:") == {ids["other"]}
    assert found(index, "+invoice -zurich") == set()             # "zurich" is a word, required


def test_a_phrase_prefix_with_too_many_completions_is_refused_in_plain_words(tmp_path):
    from vmailkit.search.index import make_document
    from vmailkit.store.searchdocs import SearchDocument

    index = MailIndex(tmp_path / "ix")
    body = " ".join(f"check i{n:05d}" for n in range(17_000))     # 17,000 words after "check"
    with index._writer() as writer:
        writer.add_document(make_document(SearchDocument(1, "s", None, None, body, None, ())))
        writer.commit()
    with pytest.raises(ValidationError, match="more letters") as err:
        index.search('"check i*"')
    assert err.value.field == "search"
    assert index.search('"check i0001*"').ids == [1]
    assert index.search("i*").ids == [1]                            # a single word's prefix has no such limit


def test_limit_order_and_total(indexed):
    store, index, ids = indexed
    everyone = index.search("hotelsol")
    assert everyone.total == 6 and len(everyone.ids) == 6
    first = index.search("hotelsol", limit=2)
    assert first.total == 6 and first.ids == everyone.ids[:2]
    newest = index.search("hotelsol", order="newest")
    assert newest.ids == sorted(everyone.ids, reverse=True)
    assert index.search("hotelsol", limit=3, order="newest").ids == newest.ids[:3]
    assert index.search("nothingmatches").ids == [] and index.search("nothingmatches").total == 0


def test_query_folding_matches_the_index_analyzer(indexed):
    """Both ways of folding query words agree: ours (the analyzer in Python) and tantivy's parser
    (the analyzer registered on the index, on an escaped, quoted term)."""
    store, index, ids = indexed
    fields = ["subject", "sender", "body", "attachments", "compounds"]
    tantivy_index = index._index
    for word in ("Zürich", "ZÜRICH", "Straße", "STRASSE", "Grüße", "Müller", "naïve", "Œuvre", "check-in",
                 "Zimmerliste_Müller.xlsx"):
        escaped = word.replace("\\", "\\\\").replace('"', '\\"')
        parsed = tantivy_index.parse_query(f'"{escaped}"', fields)
        searcher = tantivy_index.searcher()
        addresses = [a for _, a in searcher.search(parsed, limit=100).hits]
        theirs = {int(v) for v in searcher.fast_field_values("email_id", addresses)} if addresses else set()
        assert theirs or word in ("naïve", "Œuvre"), word           # the others occur in the mails
        assert found(index, f'"{word}"') == theirs, word
    assert fold("Zürich ZÜRICH Straße STRAẞE Œuvre") == ["zurich", "zurich", "strasse", "strasse", "oeuvre"]


# -- text extraction --------------------------------------------------------------------------
def test_html_to_text_keeps_word_boundaries_and_drops_the_rest():
    text = html_to_text('<p>Z<b>ü</b>rich</p><p>team</p><td>a</td><td>b</td>x<br>y<script>nope()</script>'
                        '<style>p{}</style><img alt="nope">Zim&shy;mer &amp; Co &lt;3<template>nope</template>')
    assert fold(text) == ["zurich", "team", "a", "b", "x", "y", "zimmer", "co", "3"]
    assert html_to_text(None) == "" and html_to_text("") == ""
    assert fold(html_to_text("<p>unclosed <b>tags <div>and <<< broken > markup")) == ["unclosed", "tags", "and",
                                                                                      "broken", "markup"]


def test_compound_forms():
    assert compound_forms("late check-in, e-mail, accommo-\n> dation, B-756 - dash") == [
        "checkin", "email", "accommodation", "B756"]
    assert compound_forms("no hyphen here") == []


# -- keeping up with the store ------------------------------------------------------------------
def test_catch_up_after_a_crash_between_store_and_index(store):
    first = save(store, {k: MAILS[k] for k in ("zurich", "rooming")})
    index = MailIndex.for_store(store)
    assert index.catch_up(store) == 2
    # the process stored more mail and died before updating the index
    later = save(store, {k: MAILS[k] for k in ("checkin", "html")}, first_uid=10)
    reopened = MailIndex.for_store(S(store.path))
    status = reopened.status(store)
    assert status.stale and status.missing == 2 and status.indexed == 2 and status.stored == 4
    assert found(reopened, "checkin") == set()
    assert reopened.catch_up(store) == 2
    assert found(reopened, "checkin") == {later["checkin"]}
    assert found(reopened, "rooming") == {first["rooming"]}
    status = reopened.status(store)
    assert not status.stale and status.indexed == 4 and status.highest_id == status.stored_highest_id
    assert reopened.catch_up(store) == 0                          # nothing new: nothing done


def test_catch_up_after_a_crash_between_index_commit_and_its_json_file(indexed):
    store, index, ids = indexed
    meta = index.path / META_FILE
    data = json.loads(meta.read_text())
    meta.write_text(json.dumps({**data, "highest_email_id": 0, "documents": 0}))   # the file lags behind
    assert index.catch_up(store) == 0                              # the index itself knows what it holds
    assert index.status(store).indexed == len(MAILS)
    assert index.search("zurich").total == 2                       # nothing twice


def test_catch_up_mends_lost_late_and_deleted_mail(indexed):
    store, index, ids = indexed
    with index._writer() as writer:                                # a document lost from the index
        writer.delete_documents_by_term("email_id", ids["rooming"])
        writer.commit()
    with store.db.atomic() as con:                                 # a mail deleted from the store by hand
        con.execute("DELETE FROM email_locations WHERE email_id = ?", [ids["other"]])
        con.execute("DELETE FROM emails WHERE email_id = ?", [ids["other"]])
    assert index.status(store).stale
    assert found(index, "rooming") == set() and found(index, "invoice") == {ids["other"]}
    assert index.catch_up(store) == 1
    assert found(index, "rooming") == {ids["rooming"]} and found(index, "invoice") == set()
    assert not index.status(store).stale


def test_add_reindexes_given_mails(indexed):
    store, index, ids = indexed
    assert index.add(store, [ids["rooming"], ids["rooming"], 999_999]) == 1
    assert index.search("rooming").total == 1                     # replaced, not doubled
    assert index.status(store).indexed == len(MAILS)
    assert index.add(store, []) == 0


def test_rebuild_gives_the_same_answers_as_incremental_indexing(tmp_path):
    store = new_store(tmp_path / "v.duckdb")
    index = MailIndex.for_store(store)
    names = list(MAILS)
    uid = 1
    for chunk in (names[:2], names[2:3], names[3:]):             # incremental: several downloads
        save(store, {n: MAILS[n] for n in chunk}, first_uid=uid)
        uid += len(chunk)
        index.catch_up(store)
    index.add(store, [1, 2])
    queries = ["zurich", "Straße", '"rooming list"', "check-in", "checkin", "room*", "ZÜR*", "zimmerliste",
               "panorama", "gondola", "hotelsol", "booking 703", "accommodation", "hiddenscriptword"]
    before = {q: (sorted(index.search(q).ids), index.search(q).total) for q in queries}
    assert index.rebuild(store, batch=2) == len(MAILS)
    after = {q: (sorted(index.search(q).ids), index.search(q).total) for q in queries}
    assert after == before
    fresh = MailIndex(tmp_path / "elsewhere")
    fresh.rebuild(store, batch=3)
    assert {q: (sorted(fresh.search(q).ids), fresh.search(q).total) for q in queries} == before
    assert not index.status(store).stale


def test_an_index_of_another_format_must_be_rebuilt(indexed):
    store, index, ids = indexed
    meta = index.path / META_FILE
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "format": "vmailkit-search-0"}))
    old = MailIndex(index.path)
    assert not old.compatible and old.status(store).stale
    with pytest.raises(SearchIndexError, match="index rebuild"):
        old.search("zurich")
    with pytest.raises(SearchIndexError, match="index rebuild"):
        old.catch_up(store)
    assert old.rebuild(store) == len(MAILS)
    assert old.compatible and found(old, "zurich") == {ids["zurich"], ids["zurich_plain"]}
    left = sorted(p.name for p in index.path.parent.iterdir() if p.name.startswith("v.duckdb.index"))
    assert left == ["v.duckdb.index"]                               # nothing left of the swap


def test_a_damaged_index_is_reported_and_rebuilt(indexed):
    store, index, ids = indexed
    (index.path / "meta.json").write_text("{ not json")
    damaged = MailIndex(index.path)
    assert not damaged.compatible and "cannot be read" in (damaged.problem or "")
    status = damaged.status(store)
    assert status.stale and status.indexed == 0 and status.stored == len(MAILS)
    with pytest.raises(SearchIndexError, match="index rebuild"):
        damaged.search("zurich")
    assert damaged.rebuild(store) == len(MAILS)
    assert found(damaged, "zurich") == {ids["zurich"], ids["zurich_plain"]}
    assert not damaged.status(store).stale


def test_a_second_writer_waits_then_gives_up_in_plain_words(indexed):
    store, index, ids = indexed
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from vmailkit.search import MailIndex
            index = MailIndex({str(index.path)!r})
            with index._writer():
                print("holding", flush=True)
                time.sleep(float(sys.argv[1]))
        """), "2.5"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with pytest.raises(SearchIndexBusy, match="another program"):
            MailIndex(index.path, lock_timeout=0.3).catch_up(store)
        assert time.monotonic() - started < 2.0
        assert found(index, "zurich")                              # searches do not wait
        save(store, {"late": make_mail(30, body="Sunset over Lugano")}, first_uid=30)
        assert MailIndex(index.path, lock_timeout=20).catch_up(store) == 1      # waits, then writes
        assert found(index, "lugano")
    finally:
        holder.wait(timeout=20)
    assert holder.returncode == 0


def test_a_rebuild_lets_other_programs_write_the_database(store):
    """The store is read page by page and the file released every couple of seconds: a download in
    another process gets its turn while a (slow) rebuild runs."""
    save(store, {f"m{i}": make_mail(40 + i) for i in range(8)})
    index = MailIndex.for_store(store)
    writer_script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from mailfactory import make_mail
        from vmailkit import Store
        from vmailkit.ingest import save_received
        store = Store({str(store.path)!r}, lock_timeout=4.0)
        save_received(store, "anna", "office", [("900", make_mail(900, body="Written during the rebuild"))])
        print("stored", flush=True)
    """)
    other: list[subprocess.Popen[str]] = []

    def slow(done: int) -> None:
        if done == 1:
            other.append(subprocess.Popen([sys.executable, "-c", writer_script], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, cwd=ROOT))
        time.sleep(0.8)

    count = index.rebuild(store, batch=1, progress=slow)
    out, err = other[0].communicate(timeout=30)
    assert other[0].returncode == 0 and "stored" in out, err
    assert count in (8, 9)                      # the new mail, stored while the rebuild ran, may be in it
    assert index.catch_up(store) == 9 - count and len(found(index, "rebuild")) == 1
    assert not index.status(store).stale


def test_index_lives_beside_the_database(store):
    index = MailIndex.for_store(store)
    assert index.path == Path(str(store.path) + ".index") == index_path(store.path)
    assert (index.path / META_FILE).is_file() and index.status(store).indexed == 0


def test_search_mail_catches_up_then_searches(store):
    ids = save(store, {"rooming": MAILS["rooming"]})
    assert search_mail(store, '"rooming list"').ids == [ids["rooming"]]
    more = save(store, {"zurich": MAILS["zurich"]}, first_uid=5)
    assert search_mail(store, "zurich", update=False).ids == []
    assert search_mail(store, "zurich").ids == [more["zurich"]]


def test_works_on_a_store_without_the_mixin(tmp_path):
    plain = Store(tmp_path / "p.duckdb")
    plain.add_user("anna")
    plain.add_account(make_account("office", kind="general", protocol="imap", host="h", security="ssl",
                                   address="o@x.example", secret="env:X"))
    save_received(plain, "anna", "office", [("1", MAILS["zurich"])])
    index = MailIndex.for_store(plain)
    assert index.catch_up(plain) == 1 and index.search("zürich").total == 1


# -- command line ---------------------------------------------------------------------------------
def test_cli_index_rebuild_update_and_status(store):
    from vmailkit.cli import main

    ids = save(store, {k: MAILS[k] for k in ("zurich", "rooming", "html")})
    db = str(store.path)
    runner = CliRunner()
    result = runner.invoke(main, ["--db", db, "index", "status", "--format", "json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["stale"] and status["indexed"] == 0 and status["stored"] == 3
    result = runner.invoke(main, ["--db", db, "index", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "Indexed 3 mail(s)" in result.output and str(index_path(db)) in result.output
    status = json.loads(runner.invoke(main, ["--db", db, "index", "status", "--format", "json"]).output)
    assert not status["stale"] and status["indexed"] == 3 and status["highest_id"] == max(ids.values())
    save(store, {"checkin": MAILS["checkin"]}, first_uid=9)
    result = runner.invoke(main, ["--db", db, "index", "status"])
    assert result.exit_code == 0 and "index update" in result.output   # the hint (stderr is mixed in)
    result = runner.invoke(main, ["--db", db, "index", "update"])
    assert result.exit_code == 0 and "Indexed 1 new mail(s)" in result.output
    assert found(MailIndex.for_store(store), "checkin")
    meta = index_path(db) / META_FILE
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "format": "other"}))
    result = runner.invoke(main, ["--db", db, "index", "update"])
    assert result.exit_code == 1 and "index rebuild" in result.output
    assert runner.invoke(main, ["--db", db, "index", "rebuild"]).exit_code == 0
    assert json.loads(runner.invoke(main, ["--db", db, "index", "status", "--format", "json"]).output)["indexed"] == 4


# -- layering ---------------------------------------------------------------------------------------
def _vmailkit_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found_: set[str] = set()
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found_.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found_.add(node.module)
        elif isinstance(node, ast.Import):
            found_.update(a.name for a in node.names)
    return {m for m in found_ if m.startswith("vmailkit")}


def test_layering_search_uses_only_the_store_and_the_errors():
    for path in (ROOT / "vmailkit" / "search").glob("*.py"):
        for module in _vmailkit_imports(path):
            assert module.startswith(("vmailkit.search", "vmailkit.store", "vmailkit.errors")), (path, module)
    for path in (ROOT / "vmailkit" / "store").glob("*.py"):
        assert not any(m.startswith("vmailkit.search") for m in _vmailkit_imports(path)), path
