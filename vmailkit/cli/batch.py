"""``vmailkit batch``: check → download → match for one user or every user, like
``notebooks/batch_import.ipynb``. Registered on the ``vmailkit`` group by :func:`register`."""
from __future__ import annotations

import json
import sys

import click

from ..batch import run_batch
from . import EXIT_ACCOUNT_FAILED, _passwords, _store, friendly


@click.command("batch")
@click.option("--user", "user_name", metavar="USER", help="Only this user (default: every user).")
@click.option("--from-beginning", is_flag=True, help="List every message on the servers, not only new ones "
                                                     "(stored ones count as already present; nothing is duplicated).")
@click.option("--check-only", is_flag=True, help="Only list new mail; download nothing.")
@click.option("--no-match", is_flag=True, help="Do not link new mail to CRM records.")
@click.option("--tolerate-failures", is_flag=True, help="Exit 0 even when an account failed.")
@click.option("--ask-password", is_flag=True, help="Prompt for passwords of prompt: accounts.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Also write the report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress lines on stderr.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True,
              help="table: the summary; json: the whole report; csv: one row per user and account.")
@click.pass_context
@friendly
def batch(ctx: click.Context, user_name: str | None, from_beginning: bool, check_only: bool, no_match: bool,
          tolerate_failures: bool, ask_password: bool, report_path: str | None, quiet: bool, fmt: str) -> None:
    """Check, download and link the new mail of USER or of every user; one summary row per account.

    Exit status 3 when an account failed (the others are imported), unless --tolerate-failures.
    """
    store = _store(ctx)
    passwords = None
    if ask_password:
        names = [user_name] if user_name else list(store.users()["name"])
        seen: dict[str, object] = {}
        for name in names:
            for acc in store.subscribed_accounts(name):
                seen.setdefault(acc.name, acc)
        passwords = _passwords(store, True, list(seen.values()))
    report = run_batch(
        store.path, user_name, from_beginning=from_beginning, download_all_new=not check_only, match=not no_match,
        tolerate_failures=True, passwords=passwords, lock_timeout=store.db.lock_timeout,
        log=None if quiet else (lambda line: click.echo(line, err=True)),
    )
    report.save(report_path)
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    elif fmt == "csv":
        click.echo(report.accounts.to_csv(index=False), nl=False)
    else:
        click.echo(report.to_text())
    if quiet:  # otherwise the progress lines on stderr already named each failure as it happened
        for row in report.failures().itertuples(index=False):
            click.echo(f"Error: {row.user} / {row.account}: {row.error}", err=True)
    if not report.ok and not tolerate_failures:
        sys.exit(EXIT_ACCOUNT_FAILED)


def register(main: click.Group) -> None:
    """Add ``batch`` to the ``vmailkit`` command group."""
    main.add_command(batch)
