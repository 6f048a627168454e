"""Every mail of the real-world corpus opens in the reader, and every one of its parts can be saved.

The corpus (``corpus_dir``, read in place) holds calendar invites, signed and encrypted mail, TNEF,
broken MIME and hostile names. Each file is stored through the normal import path
(:func:`vmailkit.ingest.save_received`, the records a download writes), opened in
:class:`MailReaderPanel`, and its attachments are saved through the panel, one folder per part.
"""
from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import pytest

from vmailkit import Store, make_account
from vmailkit.ingest import save_received
from vmailkit.render import MAX_FILENAME_BYTES, safe_filename
from vmailkit.ui import MailReaderPanel
from vmailkit.ui.mail import ATTACHMENT_PAGE, ATTACHMENT_PAGE_SIZES

#: Characters no saved name may hold: controls, bidirectional and other invisible formatting
#: characters (except the zero-width (non-)joiner), separators and what Windows forbids.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2069\ufeff"
                        "\u2028\u2029/\\\\:*?\"<>|]")


@pytest.fixture
def corpus_store(tmp_path, corpus_dir: Path) -> tuple[Store, dict[str, int]]:
    """The corpus stored as one IMAP folder: (store, corpus path -> email_id)."""
    files = sorted(corpus_dir.rglob("*.eml"))
    assert files, f"no .eml files under {corpus_dir}"
    store = Store(tmp_path / "corpus.duckdb", lock_timeout=5)
    store.add_user("anna")
    store.add_account(make_account("office", kind="general", protocol="imap", host="h", security="ssl",
                                   address="office@x.example", secret="env:X"))
    ids: dict[str, int] = {}
    for start in range(0, len(files), 50):
        chunk = files[start:start + 50]
        res = save_received(store, "anna", "office", [(start + i + 1, f.read_bytes()) for i, f in enumerate(chunk)])
        for i, f in enumerate(chunk):
            ids[str(f.relative_to(corpus_dir))] = res.by_key[str(start + i + 1)]
    return store, ids


def test_every_corpus_mail_opens_and_every_part_saves(corpus_store, tmp_path):
    store, ids = corpus_store
    reader = MailReaderPanel(store, save_dir=str(tmp_path))
    failures: list[str] = []
    saved: set[int] = set()                   # byte-identical files are one stored mail: save its parts once
    with store.session():                     # one connection for the whole run (speed only)
        for path, email_id in ids.items():
            reader.clear_errors()
            if not reader.open(email_id) or reader.errors or "vmk-error" in reader.message.value:
                failures.append(f"{path}: {reader.errors or html.unescape(reader.message.value)}")
                continue
            check_shown(reader, path, email_id)
            if email_id not in saved:
                save_every_part(reader, path, tmp_path / "saved")
                saved.add(email_id)
            if reader.errors:
                failures.append(f"{path}: {reader.errors}")
    assert failures == []
    assert saved == set(ids.values())
    assert any((tmp_path / "saved").iterdir())


def check_shown(reader: MailReaderPanel, path: str, email_id: int) -> None:
    """The open mail is the one asked for; its first attachment page shows safe names and a
    Download button that works."""
    assert reader.email_id == email_id and reader.content.layout.display == "", path
    assert reader.headers.value.startswith('<table class="vmk-headers">') and reader.body.value, path
    listing = reader.attachments
    rows = reader.attachments_box.children
    if listing.empty:
        assert len(rows) == 1 and "none" in rows[0].value, path
        return
    assert len(rows) == min(len(listing), ATTACHMENT_PAGE), path
    assert (reader.attachments_pager.widget.layout.display == "") == (len(listing) > min(ATTACHMENT_PAGE_SIZES))
    for row in rows:
        name = html.unescape(re.search(r'title="([^"]*)"', row.children[0].value).group(1))
        assert name and name.lower() != "nan" and not _FORBIDDEN.search(name), (path, name)
    rows[0].children[2].click()                                  # Download: a link, or "save it instead"
    assert reader.errors == [], path
    assert "vmk-download" in rows[0].children[3].value or "save it to a file" in rows[0].children[3].value, path


def save_every_part(reader: MailReaderPanel, path: str, root: Path) -> None:
    """Save each part of the open mail into a folder of its own and check name and bytes."""
    for r in reader.attachments.itertuples(index=False):
        folder = root / f"{reader.email_id}-{int(r.part_index)}"
        folder.mkdir(parents=True)
        written = Path(reader.save_attachment(int(r.part_index), str(folder)))
        assert written.parent == folder and [p.name for p in folder.iterdir()] == [written.name], path
        assert written.name == safe_filename(r.filename, r.content_type, int(r.part_index)), path
        assert len(written.name.encode("utf-8")) <= MAX_FILENAME_BYTES and not _FORBIDDEN.search(written.name), path
        if r.sha256:
            assert hashlib.sha256(written.read_bytes()).hexdigest() == r.sha256, (path, written.name)
