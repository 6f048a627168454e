"""CLI commands for CRM data, matching and links: ``crm load``, ``crm show``, ``match``, ``link``,
``unlink``, ``related``, ``search``.

Registered on the ``vmailkit`` group by :func:`register` (called from ``vmailkit.cli``).
"""
from __future__ import annotations

import json
from typing import Any

import click
import pandas as pd

from ..crm import load_crm
from ..links import default_user, link_candidates, related, search
from ..links import link as link_records
from ..links import unlink as unlink_records
from ..match import MatchResult, match_all, match_emails, match_unlinked
from ..store import CRM_TABLES, ENTITY_TYPES
from . import FORMAT, _store, emit, friendly

TYPE_HELP = f"TYPE is one of {', '.join(ENTITY_TYPES)} (aliases such as customer_invoice or order work)."


@click.group("crm")
def crm_group() -> None:
    """CRM reference data (persons, customers, suppliers, reservations, ...)."""


@crm_group.command("load")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of the CSV files.")
@FORMAT
@click.pass_context
@friendly
def crm_load(ctx: click.Context, directory: str, encoding: str, fmt: str) -> None:
    """Replace CRM tables with DIRECTORY/<table>.csv or .parquet, for the tables present.

    Tables: persons, customers, suppliers, contacts, brands, reservations, quotes,
    customer_invoices, products. All or nothing: on an error no table changes.
    """
    result = load_crm(_store(ctx), directory, encoding=encoding)
    emit(result.frame(), fmt)
    for name in result.ignored:
        click.echo(f"Ignored {name}: not a CRM table name", err=True)


@crm_group.command("show")
@click.argument("table", required=False, type=click.Choice(list(CRM_TABLES)))
@click.option("--limit", type=int, default=50, show_default=True)
@FORMAT
@click.pass_context
@friendly
def crm_show(ctx: click.Context, table: str | None, limit: int, fmt: str) -> None:
    """Rows per CRM table, or the first rows of TABLE."""
    store = _store(ctx)
    if table is None:
        counts = store.crm_counts()
        emit(pd.DataFrame({"table": list(counts), "rows": list(counts.values())}), fmt)
    else:
        emit(store.crm_frame(table).head(limit), fmt)


def _emit_match(result: MatchResult, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps({
            "mails": result.mails, "links_added": result.links_added, "by_rule": result.by_rule,
            "candidates_added": result.candidates_added, "skipped_rejected": result.skipped_rejected,
        }))
        return
    rows = [{"rule": r, "links_added": n} for r, n in result.by_rule.items()]
    emit(pd.DataFrame(rows, columns=["rule", "links_added"]), fmt)
    if fmt == "table":
        click.echo(f"{result.mails} mails matched: {result.links_added} links added, "
                   f"{result.candidates_added} reservation candidates kept, "
                   f"{result.skipped_rejected} links skipped because a user removed them")


@click.command("match")
@click.argument("email_ids", nargs=-1, type=int, metavar="[EMAIL_ID]...")
@click.option("--all", "all_mail", is_flag=True, help="Match every stored mail (default: mail with no link yet).")
@FORMAT
@click.pass_context
@friendly
def match_cmd(ctx: click.Context, email_ids: tuple[int, ...], all_mail: bool, fmt: str) -> None:
    """Link mail to CRM records by the automatic rules.

    Without arguments: every mail that has no link yet. With --all: every mail. With EMAIL_IDs:
    those mails. Running it again adds nothing twice and never re-adds a link a user removed.
    """
    if all_mail and email_ids:
        raise click.UsageError("give either --all or EMAIL_IDs, not both")
    store = _store(ctx)
    if all_mail:
        result = match_all(store)
    elif email_ids:
        result = match_emails(store, list(email_ids))
    else:
        result = match_unlinked(store)
    _emit_match(result, fmt)


def _user_option(func: Any) -> Any:
    return click.option("--user", "user_name", metavar="USER",
                        help="Who makes the change (default: $VMAILKIT_USER, else your login name).")(func)


@click.command("link")
@click.argument("email_id", type=int)
@click.argument("entity_type", metavar="TYPE")
@click.argument("entity_ids", nargs=-1, required=True, type=int, metavar="ENTITY_ID...")
@_user_option
@click.pass_context
@friendly
def link_cmd(ctx: click.Context, email_id: int, entity_type: str, entity_ids: tuple[int, ...],
             user_name: str | None) -> None:
    """Link mail EMAIL_ID to one or more CRM records of TYPE.

    \b
    TYPE is one of customer, supplier, reservation, quote, invoice, product, person
    (aliases such as customer_invoice or order work).
    """
    who = user_name or default_user()
    added = link_records(_store(ctx), email_id, [(entity_type, i) for i in entity_ids], user=who)
    skipped = len(entity_ids) - added
    click.echo(f"Linked mail {email_id} to {added} record(s)" + (f" ({skipped} already linked)" if skipped else ""))


@click.command("unlink")
@click.argument("email_id", type=int)
@click.argument("entity_type", metavar="TYPE")
@click.argument("entity_ids", nargs=-1, required=True, type=int, metavar="ENTITY_ID...")
@_user_option
@click.pass_context
@friendly
def unlink_cmd(ctx: click.Context, email_id: int, entity_type: str, entity_ids: tuple[int, ...],
               user_name: str | None) -> None:
    """Remove links of mail EMAIL_ID to CRM records of TYPE.

    Automatic matching never adds a removed link again (link it manually to undo).
    """
    who = user_name or default_user()
    removed = unlink_records(_store(ctx), email_id, [(entity_type, i) for i in entity_ids], user=who)
    click.echo(f"Unlinked {removed} record(s) from mail {email_id}")


@click.command("related")
@click.argument("email_id", type=int)
@click.option("--candidates", is_flag=True, help="Show the reservations an ambiguous number found instead.")
@FORMAT
@click.pass_context
@friendly
def related_cmd(ctx: click.Context, email_id: int, candidates: bool, fmt: str) -> None:
    """The CRM records mail EMAIL_ID is related to (type, id, name, origin, rule, who, when)."""
    store = _store(ctx)
    if candidates:
        frame = link_candidates(store, email_id)
        emit(frame[["entity_type", "entity_id", "display_name", "detail", "matched", "linked"]], fmt)
        return
    emit(related(store, email_id), fmt)
    if fmt == "table":
        pending = link_candidates(store, email_id)
        pending = pending[~pending["linked"]]
        if len(pending):
            click.echo(f"{len(pending)} reservation candidate(s) for an ambiguous number: "
                       f"vmailkit related {email_id} --candidates", err=True)


@click.command("search")
@click.argument("entity_type", metavar="TYPE")
@click.argument("text", default="")
@click.option("--limit", type=int, default=20, show_default=True)
@FORMAT
@click.pass_context
@friendly
def search_cmd(ctx: click.Context, entity_type: str, text: str, limit: int, fmt: str) -> None:
    """Find CRM records of TYPE by name, code/number or e-mail (any case, part of the text).

    \b
    TYPE is one of customer, supplier, reservation, quote, invoice, product, person
    (aliases such as customer_invoice or order work).
    """
    emit(search(_store(ctx), entity_type, text, limit=limit), fmt)


def register(main: click.Group) -> None:
    """Add the CRM, matching and link commands to the ``vmailkit`` group."""
    main.add_command(crm_group)
    for command in (match_cmd, link_cmd, unlink_cmd, related_cmd, search_cmd):
        main.add_command(command)
