"""The command line, end to end against the test Dovecot, and two processes sharing one file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import port_for
from mailfactory import make_mail
from vmailkit import Store

pytestmark = pytest.mark.dovecot


def run(db: Path, *args: str, env: dict[str, str] | None = None, check: bool = False) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "vmailkit", "--db", str(db), *args], capture_output=True, text=True,
                          env=full_env, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"vmailkit {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def setup_db(db: Path, dovecot, user, *, env_name: str, account: str = "office", protocol: str = "imap",
             security: str = "ssl") -> None:
    run(db, "init", check=True)
    if "anna" not in set(Store(db).users()["name"]):
        run(db, "user", "add", "anna", "--email", "anna@tour.example", check=True)
    run(db, "account", "add", account, "--kind", "general", "--protocol", protocol, "--host", dovecot.host,
        "--port", str(port_for(dovecot, protocol, security)), "--security", security, "--address", user.address,
        "--login", user.name, "--secret", f"env:{env_name}", "--ca-file", str(dovecot.ca_file), check=True)
    run(db, "subscribe", "anna", account, check=True)


def test_cli_check_download_emails(tmp_path, dovecot, mailuser):
    db = tmp_path / "v.duckdb"
    for n in range(1, 4):
        dovecot.deliver(mailuser.name, make_mail(n, attachment=b"pdf" if n == 2 else None))
    env = {"VMK_PW": mailuser.password}
    setup_db(db, dovecot, mailuser, env_name="VMK_PW")

    listed = run(db, "account", "list", "--format", "json", check=True)
    accounts = json.loads(listed.stdout)
    assert accounts[0]["secret_ref"] == "env:VMK_PW" and mailuser.password not in listed.stdout

    tested = run(db, "account", "test", "office", env=env, check=True)
    assert "OK" in tested.stdout and "3 messages" in tested.stdout

    out = run(db, "check", "anna", "--format", "json", env=env, check=True)
    data = json.loads(out.stdout)
    assert data["errors"] == []
    assert [m["subject"] for m in data["messages"]] == [
        "Booking 703 rooming list", "Booking 702 rooming list", "Booking 701 rooming list"]
    first = data["messages"][0]
    assert set(first) == {"account", "folder", "uid", "from", "subject", "date", "size", "has_attachments",
                          "already_downloaded", "ref", "pick"}
    assert first["ref"]["uid"] == int(first["uid"]) and first["ref"]["uidvalidity"] > 0
    assert first["pick"] == f"office/INBOX;UIDVALIDITY={first['ref']['uidvalidity']};UID={first['uid']}"
    assert first["from"] == "reservas@hotelsol.example" and first["date"].startswith("2026-11-02T12:00:00")
    assert [m["has_attachments"] for m in data["messages"]] == [False, True, False]

    pick = data["messages"][1]["pick"]
    dl = run(db, "download", "anna", "--pick", pick, "--format", "json", env=env, check=True)
    assert json.loads(dl.stdout)[0]["downloaded"] == 1
    dl = run(db, "download", "anna", "--all", "--format", "csv", env=env, check=True)
    assert dl.stdout.splitlines()[0].startswith("account,selected,downloaded")
    assert dl.stdout.splitlines()[1].startswith("office,1,1")  # only UID above the watermark

    emails = json.loads(run(db, "emails", "--status", "unread", "--format", "json", check=True).stdout)
    assert [e["subject"] for e in emails] == ["Booking 703 rooming list", "Booking 702 rooming list"]
    assert json.loads(run(db, "emails", "--search", "702", "--format", "json", check=True).stdout)[0]["status"] == "unread"
    table = run(db, "emails", check=True).stdout
    assert "Booking 703 rooming list" in table and "related_count" in table

    def listed(*args: str) -> list[str]:
        return [e["subject"] for e in json.loads(run(db, "emails", *args, "--format", "json", check=True).stdout)]

    assert listed("--unlinked") == ["Booking 703 rooming list", "Booking 702 rooming list"]
    assert listed("--linked") == [] and listed("--entity", "customer:1") == []
    assert listed("--since", "2026-11-02T11:30:00") == ["Booking 703 rooming list"]
    assert listed("--until", "2026-11-02T11:30:00", "--account", "office", "--user", "anna") == ["Booking 702 rooming list"]
    bad = run(db, "emails", "--entity", "spaceship:1")
    assert bad.returncode == 1 and "entity_type" in bad.stderr


def test_cli_failing_account_exit_3_others_complete(tmp_path, dovecot, mailuser):
    db = tmp_path / "v.duckdb"
    other = dovecot.new_user()
    dovecot.deliver(other.name, make_mail(9))
    setup_db(db, dovecot, mailuser, env_name="VMK_BAD")
    setup_db(db, dovecot, other, env_name="VMK_GOOD", account="good", protocol="pop3", security="starttls")
    env = {"VMK_BAD": "wrong-password", "VMK_GOOD": other.password}
    out = run(db, "check", "anna", "--format", "json", env=env)
    assert out.returncode == 3
    data = json.loads(out.stdout)
    assert [e["account"] for e in data["errors"]] == ["office"]
    assert [m["subject"] for m in data["messages"]] == ["Booking 709 rooming list"]
    assert "wrong-password" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    dl = run(db, "download", "anna", "--all", env=env)
    assert dl.returncode == 3 and "office" in dl.stderr
    assert Store(db).count_emails() == 1


@pytest.mark.parametrize(
    "args,needle",
    [
        (["account", "add", "x", "--kind", "general", "--protocol", "imap", "--host", "", "--security", "ssl",
          "--address", "a@b.c", "--secret", "env:X"], "host"),
        (["account", "add", "x", "--kind", "personal", "--protocol", "imap", "--host", "h", "--security", "ssl",
          "--address", "a@b.c", "--secret", "env:X"], "owner"),
        (["account", "add", "x", "--kind", "general", "--protocol", "imap", "--host", "h", "--port", "99999",
          "--security", "ssl", "--address", "a@b.c", "--secret", "env:X"], "port"),
        (["account", "add", "x", "--kind", "general", "--protocol", "imap", "--host", "h", "--security", "ssl",
          "--address", "a@b.c", "--secret", "MyPassword1"], "secret"),
        (["check", "nobody"], "nobody"),
        (["download", "nobody", "--pick", "garbage"], "nobody"),
    ],
)
def test_cli_bad_input_one_line(tmp_path, args, needle):
    proc = run(tmp_path / "v.duckdb", *args)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0]
    assert "MyPassword1" not in proc.stderr


def test_two_processes_import_at_once(tmp_path, dovecot):
    """Two batch imports into one DuckDB file at the same time both succeed."""
    db = tmp_path / "shared.duckdb"
    users = [dovecot.new_user(), dovecot.new_user()]
    for i, u in enumerate(users):
        for n in range(40):
            dovecot.deliver(u.name, make_mail(100 * i + n, attachment=bytes(2000)))
    setup_db(db, dovecot, users[0], env_name="VMK_A", account="a")
    setup_db(db, dovecot, users[1], env_name="VMK_B", account="b")
    run(db, "user", "add", "ben", check=True)
    run(db, "unsubscribe", "anna", "b", check=True)
    run(db, "subscribe", "ben", "b", check=True)
    env = {**os.environ, "VMK_A": users[0].password, "VMK_B": users[1].password}
    procs = [
        subprocess.Popen([sys.executable, "-m", "vmailkit", "--db", str(db), "download", who, "--all"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for who in ("anna", "ben")
    ]
    results = [p.communicate(timeout=180) + (p.returncode,) for p in procs]
    for out, err, code in results:
        assert code == 0, err
    assert Store(db).count_emails() == 80
