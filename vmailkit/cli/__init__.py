"""The ``vmailkit`` command line: a thin layer over the library.

Exit status: 0 on success, 1 with a one-line message on bad input or a library error, 2 for usage
errors, 3 when an account failed in ``check``/``download`` while the others completed.
"""
from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import pandas as pd

from .. import sync
from ..browse import resolve_search
from ..accounts import make_account, make_oauth_settings
from ..refs import read_picks_text
from .signals import stop_on_signals
from ..errors import VmailkitError
from ..store import EmailFilter, Store

EXIT_ACCOUNT_FAILED = 3
#: Exit status of a download stopped by SIGTERM or Ctrl-C (after storing what was fetched).
EXIT_STOPPED = 130

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
                      show_default=True, help="Output format.")


def _store(ctx: click.Context) -> Store:
    return ctx.obj["store"]


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into a one-line message and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VmailkitError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def emit(frame: pd.DataFrame, fmt: str) -> None:
    """Print a DataFrame as a table, JSON records or CSV."""
    if fmt == "json":
        click.echo(frame.to_json(orient="records", date_format="iso", force_ascii=False))
    elif fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif frame.empty:
        click.echo("(none)")
    else:
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            click.echo(frame.to_string(index=False))


def _passwords(store: Store, ask: bool, accounts: list[Any]) -> dict[str, str]:
    if not ask:
        return {}
    return {
        a.name: getpass.getpass(f"Password for {a.name} ({a.login}): ")
        for a in accounts
        if a.secret_ref in ("", "prompt:")
    }


def _lock_timeout(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """``--lock-timeout`` as given; raises :class:`click.BadParameter` (exit 2) unless it is a finite
    number of seconds, 0 or more (``-5``, ``nan`` and ``inf`` are refused)."""
    if not 0 <= value < float("inf"):  # also false for nan
        raise click.BadParameter(f"{value} is not a number of seconds; give 0 or more (e.g. 60)",
                                 ctx=ctx, param=param)
    return value


@click.group()
@click.option("--db", type=click.Path(dir_okay=False), envvar="VMAILKIT_DB", default="vmail.duckdb",
              show_default=True, help="DuckDB file (default $VMAILKIT_DB, else ./vmail.duckdb).")
@click.option("--lock-timeout", type=float, default=60.0, show_default=True, callback=_lock_timeout,
              help="Seconds (0 or more) to wait while another process writes the database.")
@click.version_option(package_name="vmailkit")
@click.pass_context
def main(ctx: click.Context, db: str, lock_timeout: float) -> None:
    """vmailkit: pull POP3/IMAP mail into DuckDB and link it to CRM records."""
    ctx.ensure_object(dict)
    ctx.obj["store"] = Store(db, lock_timeout=lock_timeout)


@main.command()
@click.pass_context
@friendly
def init(ctx: click.Context) -> None:
    """Create the database (or apply pending migrations)."""
    store = _store(ctx)
    store.init()
    click.echo(f"Initialised {store.path}")


# -- users ------------------------------------------------------------------------------------
@main.group()
def user() -> None:
    """Users of vmailkit."""


@user.command("add")
@click.argument("name")
@click.option("--email", help="The user's own e-mail address.")
@click.pass_context
@friendly
def user_add(ctx: click.Context, name: str, email: str | None) -> None:
    """Add a user."""
    u = _store(ctx).add_user(name, email)
    click.echo(f"Added user {u.name}")


@user.command("list")
@FORMAT
@click.pass_context
@friendly
def user_list(ctx: click.Context, fmt: str) -> None:
    """List users."""
    emit(_store(ctx).users(), fmt)


# -- accounts ---------------------------------------------------------------------------------
@main.group()
def account() -> None:
    """Mail accounts (general or personal)."""


@account.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(["general", "personal"]), required=True)
@click.option("--owner", help="User owning a personal account.")
@click.option("--protocol", type=click.Choice(["imap", "pop3"]), required=True)
@click.option("--host", required=True)
@click.option("--port", type=int, help="Default: 993/143 (IMAP), 995/110 (POP3).")
@click.option("--security", type=click.Choice(["ssl", "starttls", "plain"]), required=True)
@click.option("--address", required=True, help="The account's e-mail address.")
@click.option("--login", help="Login name (default: the address).")
@click.option("--secret", help="Password accounts: env:VARNAME, keyring:SERVICE/NAME or prompt: (never the password).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="Extra CA certificate(s) to trust.")
@click.option("--folder", help="IMAP folder (default INBOX).")
@click.option("--auth", type=click.Choice(["password", "oauth2"]), default="password", show_default=True,
              help="How the account signs in (Microsoft 365 and Google need oauth2).")
@click.option("--oauth-provider", type=click.Choice(["microsoft", "google", "generic"]), help="With --auth oauth2.")
@click.option("--client-id", help="The application (client) id registered with the provider.")
@click.option("--client-secret", metavar="REF", help="env:VARNAME or keyring:SERVICE/NAME (confidential clients only).")
@click.option("--tenant", help="Microsoft: the tenant id or domain (default: organizations).")
@click.option("--token-url", help="generic: the token endpoint.")
@click.option("--auth-url", help="generic: the authorization endpoint (browser sign-in).")
@click.option("--device-url", help="generic: the device authorization endpoint (device sign-in).")
@click.option("--scope", help="Space-separated scopes (default: the provider's scopes for IMAP, POP3 and SMTP).")
@click.pass_context
@friendly
def account_add(ctx: click.Context, name: str, auth: str, oauth_provider: str | None, client_id: str | None,
                client_secret: str | None, tenant: str | None, token_url: str | None, auth_url: str | None,
                device_url: str | None, scope: str | None, **opts: Any) -> None:
    """Add an account (then, for OAuth2: `vmailkit account signin NAME`)."""
    oauth = None
    if auth == "oauth2":
        if not oauth_provider:
            raise click.UsageError("--auth oauth2 needs --oauth-provider microsoft|google|generic")
        oauth = make_oauth_settings(provider=oauth_provider, client_id=client_id or "", client_secret=client_secret,
                                    tenant=tenant, token_url=token_url, auth_url=auth_url, device_url=device_url,
                                    scope=scope)
    elif any((oauth_provider, client_id, client_secret, tenant, token_url, auth_url, device_url, scope)):
        raise click.UsageError("the OAuth2 options need --auth oauth2")
    elif not opts.get("secret"):
        raise click.UsageError("a password account needs --secret env:VARNAME, keyring:SERVICE/NAME or prompt:")
    acc = make_account(name, oauth=oauth, **{k: v or "" if k == "secret" else v for k, v in opts.items()})
    stored = _store(ctx).add_account(acc)
    click.echo(f"Added {stored.kind} account {stored.name} ({stored.protocol} {stored.security} {stored.host}:{stored.port})"
               + (f"; sign it in with `vmailkit account signin {stored.name} --device`" if oauth else ""))


@account.command("list")
@FORMAT
@click.pass_context
@friendly
def account_list(ctx: click.Context, fmt: str) -> None:
    """List accounts with their health: auth, last check and download, failing since, sign-in renewed."""
    store = _store(ctx)
    frame = store.accounts_frame()
    health = store.health().rename(columns={"account": "name"})
    emit(frame.merge(health, on="name", how="left"), fmt)


@account.command("test")
@click.argument("name")
@click.option("--ask-password", is_flag=True, help="Prompt for the password of a prompt: account.")
@click.option("--timeout", type=float, default=15.0, show_default=True)
@click.pass_context
@friendly
def account_test(ctx: click.Context, name: str, ask_password: bool, timeout: float) -> None:
    """Connect and log in to an account, without changing anything on the server."""
    store = _store(ctx)
    acc = store.get_account(name)
    click.echo(sync.test_account(acc, _passwords(store, ask_password, [acc]), timeout=timeout))


@account.command("delete")
@click.argument("name")
@click.pass_context
@friendly
def account_delete(ctx: click.Context, name: str) -> None:
    """Delete an account (its downloaded mail stays)."""
    _store(ctx).delete_account(name)
    click.echo(f"Deleted account {name}")


@main.command()
@click.argument("user_name", metavar="USER")
@click.argument("account_name", metavar="ACCOUNT")
@click.pass_context
@friendly
def subscribe(ctx: click.Context, user_name: str, account_name: str) -> None:
    """Subscribe USER to ACCOUNT."""
    _store(ctx).subscribe(user_name, account_name)
    click.echo(f"{user_name} subscribes to {account_name}")


@main.command()
@click.argument("user_name", metavar="USER")
@click.argument("account_name", metavar="ACCOUNT")
@click.pass_context
@friendly
def unsubscribe(ctx: click.Context, user_name: str, account_name: str) -> None:
    """Unsubscribe USER from ACCOUNT."""
    _store(ctx).unsubscribe(user_name, account_name)
    click.echo(f"{user_name} no longer subscribes to {account_name}")


# -- incoming mail ----------------------------------------------------------------------------
@main.command()
@click.argument("user_name", metavar="USER")
@click.option("--from-beginning", is_flag=True, help="List every message, not only new ones.")
@click.option("--ask-password", is_flag=True, help="Prompt for passwords of prompt: accounts.")
@FORMAT
@click.pass_context
@friendly
def check(ctx: click.Context, user_name: str, from_beginning: bool, ask_password: bool, fmt: str) -> None:
    """List the headers of new mail in USER's accounts, newest first."""
    store = _store(ctx)
    pw = _passwords(store, ask_password, store.subscribed_accounts(user_name)) if ask_password else None
    result = sync.check(store, user_name, from_beginning=from_beginning, passwords=pw)
    if fmt == "json":
        click.echo(json.dumps(result.to_json_dict(), ensure_ascii=False))
    else:
        frame = result.messages.assign(pick=[r.to_text() for r in result.messages["ref"]])
        cols = ["account", "date", "from_address", "subject", "size", "has_attachments", "already_downloaded", "pick"]
        emit(frame[cols], fmt)
    for status in result.errors:
        click.echo(f"Error: {status.error}", err=True)
    if result.errors:
        sys.exit(EXIT_ACCOUNT_FAILED)


@main.command()
@click.argument("user_name", metavar="USER")
@click.option("--all", "all_new", is_flag=True, help="Download every new message.")
@click.option("--pick", "picks", multiple=True, metavar="REF",
              help="A message to download, as listed by check (its pick column), repeatable.")
@click.option("--picks-from", "picks_file", type=click.File("r", encoding="utf-8"), metavar="FILE",
              help="Messages to download: the JSON of `check --format json` (or one reference per line); - for stdin.")
@click.option("--from-beginning", is_flag=True, help="With --all: every message not stored yet from that place.")
@click.option("--retries", type=click.IntRange(min=0), default=sync.RETRIES, show_default=True,
              help="New connections tried in a row without progress when a connection drops.")
@click.option("--retry-wait", type=click.FloatRange(min=0, max=3600), default=sync.RETRY_WAIT, show_default=True,
              help="Seconds before the first new connection (doubled for each further one).")
@click.option("--ask-password", is_flag=True, help="Prompt for passwords of prompt: accounts.")
@click.option("--progress/--no-progress", default=None, help="Show progress (default: when on a terminal).")
@FORMAT
@click.pass_context
@friendly
def download(ctx: click.Context, user_name: str, all_new: bool, picks: tuple[str, ...], picks_file: Any,
             from_beginning: bool, retries: int, retry_wait: float, ask_password: bool, progress: bool | None,
             fmt: str) -> None:
    """Download picked messages, or all new ones, into the store.

    SIGTERM or Ctrl-C stops between chunks: what was fetched is stored, and the next run goes on.
    """
    chosen: list[Any] = list(picks)
    if picks_file is not None:
        chosen += read_picks_text(picks_file.read())
        if not chosen:
            raise click.BadParameter("the file lists no message", param_hint="--picks-from")
    if bool(all_new) == bool(chosen):
        raise click.UsageError("give either --all or the messages to download (--pick or --picks-from)")
    store = _store(ctx)
    pw = _passwords(store, ask_password, store.subscribed_accounts(user_name)) if ask_password else None
    show = sys.stderr.isatty() if progress is None else progress

    def report(done: int, total: int) -> None:
        if show:
            click.echo(f"\rdownloaded {done}/{total}", err=True, nl=done >= total)

    with stop_on_signals() as cancel:
        summary = sync.download(store, user_name, picks=chosen or None, all_new=all_new,
                                from_beginning=from_beginning, passwords=pw, progress=report, cancel=cancel,
                                after_chunk=_auto_matcher(), retries=retries, retry_wait=retry_wait)
    frame = summary.frame()
    emit(frame[["account", "selected", "downloaded", "already_present", "failed", "parse_errors", "auto_linked",
                "reconnects", "error"]], fmt)
    for entry in summary.accounts:
        if entry.error:
            click.echo(f"Error: {entry.error}", err=True)
        for failure in entry.failures:
            click.echo(f"Error: {failure.describe()}", err=True)
    if summary.cancelled:
        click.echo("Stopped: what was fetched is stored; run the same command again to download the rest.", err=True)
        sys.exit(EXIT_STOPPED)
    if not summary.ok:
        sys.exit(EXIT_ACCOUNT_FAILED)


def _auto_matcher():  # type: ignore[no-untyped-def]
    """The automatic matcher, when the matching module is present."""
    try:
        from ..match import match_new
    except ImportError:
        return None
    return match_new


@main.command()
@click.option("--status", type=click.Choice(["unread", "read"]))
@click.option("--direction", type=click.Choice(["incoming", "outgoing"]))
@click.option("--account", "account_name", help="Only mail received in (or sent through) this account.")
@click.option("--user", "user_name", help="Only mail of the accounts this user subscribes to.")
@click.option("--search", help='Full-text search: words (all must match), "a phrase", prefix*; accents and case ignored.')
@click.option("--sender", help="Exact sender: an address (ana@hotel.example) or a domain (hotel.example).")
@click.option("--record", help="Linked to the CRM record known by this booking code, code, number, name or e-mail.")
@click.option("--linked/--unlinked", default=None, help="Only mail related (or not) to a CRM record.")
@click.option("--entity", metavar="TYPE[:ID]", help="Only mail linked to a record of TYPE (with that id).")
@click.option("--since", type=click.DateTime(), help="Sent on or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Sent before (UTC).")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True)
@FORMAT
@click.pass_context
@friendly
def emails(ctx: click.Context, status: str | None, direction: str | None, account_name: str | None,
           user_name: str | None, search: str | None, sender: str | None, record: str | None,
           linked: bool | None, entity: str | None, since: Any, until: Any, limit: int, offset: int, fmt: str) -> None:
    """List stored mail, newest first, with its related-to count."""
    entity_type, entity_id = None, None
    if entity:
        entity_type, _, raw_id = entity.partition(":")
        if raw_id:
            if not raw_id.strip().isdigit():
                raise click.BadParameter(f"{raw_id!r} is not a record id", param_hint="--entity")
            entity_id = int(raw_id)
    flt = EmailFilter(status=status, direction=direction, account=account_name, user=user_name, search=search,
                      linked=linked, entity_type=entity_type, entity_id=entity_id, sender=sender, record=record,
                      since=_utc(since), until=_utc(until))
    store = _store(ctx)
    with store.session():  # one connection for the whole command
        emit(store.list_emails(resolve_search(store, flt), limit=limit, offset=offset), fmt)


def _utc(value: Any) -> Any:
    """A naive datetime from the command line, taken as UTC."""
    from datetime import timezone

    return None if value is None else value.replace(tzinfo=timezone.utc)


def _register_subcommands() -> None:
    """Command groups that live in their own modules (``vmailkit/cli/<topic>.py``)."""
    import importlib

    for topic in ("crm", "reply", "batch", "oauth", "index"):
        try:
            module = importlib.import_module(f"{__name__}.{topic}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{topic}":
                raise
            continue
        module.register(main)


_register_subcommands()

if __name__ == "__main__":  # pragma: no cover
    main()
