"""``vmailkit reply`` and ``vmailkit account smtp``: answer a stored mail over the account's SMTP server."""
from __future__ import annotations

import getpass
from typing import Any

import click

from ..accounts import SECURITIES, make_smtp_settings
from ..reply import compose_reply, send_reply
from . import _store, friendly


@click.command("smtp")
@click.argument("name")
@click.option("--host", required=True, help="SMTP server host name.")
@click.option("--port", type=int, help="Default: 465 (ssl), 587 (starttls), 25 (plain).")
@click.option("--security", type=click.Choice(SECURITIES), required=True)
@click.option("--login", help="SMTP login (default: the account's login).")
@click.option("--secret", required=True, help="env:VARNAME, keyring:SERVICE/NAME or prompt: (never the password).")
@click.option("--ca-file", type=click.Path(exists=True, dir_okay=False), help="Extra CA certificate(s) to trust.")
@click.pass_context
@friendly
def account_smtp(ctx: click.Context, name: str, host: str, port: int | None, security: str, login: str | None,
                 secret: str, ca_file: str | None) -> None:
    """Set the SMTP settings account NAME sends replies with."""
    store = _store(ctx)
    acc = store.get_account(name)
    settings = make_smtp_settings(host=host, port=port, security=security, login=login or acc.login, secret=secret,
                                  ca_file=ca_file)
    store.set_smtp(name, settings)
    click.echo(f"SMTP for {name}: {settings.security} {settings.host}:{settings.port} as {settings.login}")


@click.command("reply")
@click.argument("email_id", type=int)
@click.option("--body-file", type=click.File("r", encoding="utf-8"), required=True,
              help="The new text (UTF-8); '-' reads standard input.")
@click.option("--all", "reply_all", is_flag=True, help="Reply to all: the other To/Cc recipients as Cc.")
@click.option("--attach", "attach", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A file to attach (repeatable).")
@click.option("--user", "user_name", help="Who sends (must subscribe to the sending account).")
@click.option("--account", "account_name", help="Sending account (default: the one the mail came through).")
@click.option("--from-name", help="Display name in From.")
@click.option("--save-sent", is_flag=True, help="Also append the sent mail to the IMAP account's Sent folder.")
@click.option("--sent-folder", help="Folder for --save-sent (default: the server's \\Sent folder, else Sent).")
@click.option("--ask-password", is_flag=True, help="Prompt for passwords of prompt: secrets.")
@click.option("--dry-run", is_flag=True, help="Show sender, recipients and subject; send nothing.")
@click.option("--timeout", type=float, default=30.0, show_default=True)
@click.pass_context
@friendly
def reply(ctx: click.Context, email_id: int, body_file: Any, reply_all: bool, attach: tuple[str, ...],
          user_name: str | None, account_name: str | None, from_name: str | None, save_sent: bool,
          sent_folder: str | None, ask_password: bool, dry_run: bool, timeout: float) -> None:
    """Reply to mail EMAIL_ID and print the id of the stored outgoing mail."""
    store = _store(ctx)
    draft = compose_reply(store, email_id, reply_all=reply_all, body=body_file.read(), attachments=list(attach),
                          account=account_name, user=user_name, from_name=from_name)
    if dry_run:
        click.echo(f"From:    {draft.from_address} (account {draft.account})")
        click.echo(f"To:      {', '.join(draft.to)}")
        if draft.cc:
            click.echo(f"Cc:      {', '.join(draft.cc)}")
        click.echo(f"Subject: {draft.subject}")
        for att in draft.attachments:
            click.echo(f"Attach:  {att.filename} ({att.content_type}, {len(att.content)} bytes)")
        return
    passwords: dict[str, str] = {}
    if ask_password:
        acc = store.get_account(draft.account)
        if acc.smtp is not None and acc.smtp.secret_ref in ("", "prompt:"):
            passwords[f"{acc.name}:smtp"] = getpass.getpass(f"SMTP password for {acc.name} ({acc.smtp.login}): ")
        if save_sent and acc.secret_ref in ("", "prompt:"):
            same = acc.smtp is not None and acc.smtp.login == acc.login and f"{acc.name}:smtp" in passwords
            passwords[acc.name] = (passwords[f"{acc.name}:smtp"] if same
                                   else getpass.getpass(f"Password for {acc.name} ({acc.login}): "))
    new_id = send_reply(store, draft, user=user_name, passwords=passwords or None, save_to_sent=save_sent,
                        sent_folder=sent_folder, timeout=timeout)
    if save_sent:
        info = store.sent_info(new_id) or {}
        if info.get("sent_folder_error"):
            click.echo(f"Warning: sent and stored, but not copied to the Sent folder: {info['sent_folder_error']}",
                       err=True)
    click.echo(new_id)


def register(main: click.Group) -> None:
    """Add ``reply`` to the root group and ``smtp`` to ``account``."""
    main.add_command(reply)
    main.commands["account"].add_command(account_smtp)  # type: ignore[attr-defined]
