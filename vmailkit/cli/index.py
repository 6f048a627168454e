"""``vmailkit index rebuild|update|status``: the full-text search index beside the database.

Registered on the ``vmailkit`` group by :func:`register` (called from ``vmailkit.cli``). The index
lives in ``<database file>.index/`` (see docs/search.md).
"""
from __future__ import annotations

import json
import time

import click
import pandas as pd

from ..search import MailIndex
from . import FORMAT, _store, emit, friendly


def _index(ctx: click.Context) -> MailIndex:
    store = _store(ctx)
    return MailIndex.for_store(store, lock_timeout=store.db.lock_timeout)


@click.group("index")
def index_group() -> None:
    """The full-text search index beside the database (<db file>.index/)."""


@index_group.command("rebuild")
@click.pass_context
@friendly
def rebuild_cmd(ctx: click.Context) -> None:
    """Index every stored mail from scratch (searches see the old index until it is done)."""
    store = _store(ctx)
    index = _index(ctx)
    started = time.monotonic()
    count = index.rebuild(store)
    click.echo(f"Indexed {count} mail(s) in {time.monotonic() - started:.1f} s: {index.path}")


@index_group.command("update")
@click.pass_context
@friendly
def update_cmd(ctx: click.Context) -> None:
    """Index the mail stored since the last update (also after a crash); cheap when nothing is new."""
    store = _store(ctx)
    index = _index(ctx)
    started = time.monotonic()
    count = index.catch_up(store)
    click.echo(f"Indexed {count} new mail(s) in {time.monotonic() - started:.1f} s: {index.path}")


@index_group.command("status")
@FORMAT
@click.pass_context
@friendly
def status_cmd(ctx: click.Context, fmt: str) -> None:
    """Mails indexed and stored, the highest id of each, and whether the index is stale."""
    status = _index(ctx).status(_store(ctx))
    row = status.as_dict()
    if fmt == "json":
        click.echo(json.dumps(row))
    else:
        emit(pd.DataFrame([row]), fmt)
    if status.stale and fmt == "table":
        hint = "vmailkit index update" if status.compatible else "vmailkit index rebuild"
        click.echo(f"The index is stale: run `{hint}`", err=True)


def register(main: click.Group) -> None:
    """Add the ``index`` group to the ``vmailkit`` group."""
    main.add_command(index_group)
