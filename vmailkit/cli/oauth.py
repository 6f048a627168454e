"""``vmailkit account signin|signout|health``: OAuth2 sign-in and each account's health."""
from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click

from ..errors import ValidationError
from ..health import problems
from ..oauth import token_store
from ..oauth.signin import adopt_refresh_token, sign_in_browser, sign_in_device, sign_out
from ..secrets import resolve_secret
from . import EXIT_ACCOUNT_FAILED, FORMAT, _store, emit, friendly


@click.command("signin")
@click.argument("name")
@click.option("--device", "how", flag_value="device", help="Show an address and a code to enter on any device.")
@click.option("--browser", "how", flag_value="browser", help="Sign in in the browser (redirect to 127.0.0.1).")
@click.option("--refresh-token", "refresh_ref", metavar="REF",
              help="Adopt a grant obtained elsewhere: env:VARNAME or keyring:SERVICE/NAME holding its refresh token.")
@click.option("--no-open", is_flag=True, help="With --browser: print the address instead of opening a browser.")
@click.pass_context
@friendly
def signin(ctx: click.Context, name: str, how: str | None, refresh_ref: str | None, no_open: bool) -> None:
    """Sign account NAME in with OAuth2; the grant is kept in the token store ($VMAILKIT_TOKEN_STORE)."""
    if bool(how) == bool(refresh_ref):
        raise click.UsageError("choose one way to sign in: --device, --browser or --refresh-token REF")
    account = _store(ctx).get_account(name)
    tokens = token_store()
    if refresh_ref:
        if not refresh_ref.startswith(("env:", "keyring:")):
            raise ValidationError("refresh_token", "give it as env:VARNAME or keyring:SERVICE/NAME, never the token itself")
        adopt_refresh_token(account, tokens, resolve_secret(name, refresh_ref, None))
    elif how == "device":
        def show(code: Any) -> None:
            click.echo(f"To sign in {name}, open {code.verification_uri} and enter the code {code.user_code}")
            click.echo("Waiting for the sign-in ...")

        sign_in_device(account, tokens, show)
    else:
        sign_in_browser(account, tokens, open_browser=not no_open,
                        show=lambda url: click.echo(f"To sign in {name}, open: {url}"))
    click.echo(f"Signed in {name}; the sign-in is kept in {tokens.describe()}")


@click.command("signout")
@click.argument("name")
@click.pass_context
@friendly
def signout(ctx: click.Context, name: str) -> None:
    """Forget the OAuth2 sign-in of account NAME (revoke it at the provider to end it there too)."""
    account = _store(ctx).get_account(name)
    tokens = token_store()
    sign_out(account, tokens)
    click.echo(f"Signed out {name} ({tokens.describe()})")


@click.command("health")
@click.option("--failing-for", type=click.FloatRange(min=0), default=24.0, show_default=True, metavar="HOURS",
              help="Report an account that has been failing this long.")
@click.option("--grant-age", type=click.FloatRange(min=0), default=60.0, show_default=True, metavar="DAYS",
              help="Report an OAuth2 sign-in not renewed for this long.")
@FORMAT
@click.pass_context
@friendly
def health(ctx: click.Context, failing_for: float, grant_age: float, fmt: str) -> None:
    """Each account's health; exit status 3 when one needs attention (for cron)."""
    store = _store(ctx)
    emit(store.health(), fmt)
    found = problems(store, failing_for=timedelta(hours=failing_for), grant_age=timedelta(days=grant_age))
    for line in found:
        click.echo(f"Attention: {line}", err=True)
    if found:
        sys.exit(EXIT_ACCOUNT_FAILED)


def register(main: click.Group) -> None:
    """Add the commands to the ``account`` group."""
    group = main.commands["account"]
    assert isinstance(group, click.Group)
    for command in (signin, signout, health):
        group.add_command(command)
