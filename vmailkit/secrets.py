"""Secret references: how an account finds its password at run time.

An account stores a *reference*, never the password itself:

* ``env:VARNAME`` reads the environment variable ``VARNAME``;
* ``keyring:SERVICE/NAME`` asks the system keyring (the ``keyring`` package);
* ``prompt:`` (or an empty reference) means the caller passes the password in memory, e.g. from a
  notebook's password field, through the ``passwords`` mapping of the sync functions.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import SecretError, ValidationError

SCHEMES = ("env", "keyring", "prompt")


def check_reference(ref: str) -> str:
    """Return ``ref`` normalised, or raise :class:`ValidationError` (field ``secret``).

    A value that looks like a password rather than a reference is refused, so that passwords never
    reach the database by mistake.
    """
    ref = (ref or "").strip()
    if not ref:
        return "prompt:"
    scheme, sep, rest = ref.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ValidationError(
            "secret",
            "expected a reference such as env:VARNAME, keyring:SERVICE/NAME or prompt: "
            "(the password itself is never stored)",
        )
    if scheme == "env" and not rest:
        raise ValidationError("secret", "env: needs a variable name, e.g. env:MAIL_PASSWORD")
    if scheme == "keyring" and "/" not in rest:
        raise ValidationError("secret", "keyring: needs SERVICE/NAME, e.g. keyring:vmailkit/info@example.com")
    return ref


def resolve_secret(account_name: str, ref: str, passwords: Mapping[str, str] | None = None) -> str:
    """Return the password for ``account_name``.

    A password passed in memory (``passwords[account_name]``) wins over the reference.
    Raises :class:`SecretError` naming the account and the reference when nothing is found.
    """
    if passwords and passwords.get(account_name):
        return passwords[account_name]
    ref = (ref or "").strip() or "prompt:"
    scheme, _, rest = ref.partition(":")
    if scheme == "env":
        value = os.environ.get(rest)
        if not value:
            raise SecretError(f"account {account_name!r}: environment variable {rest} (from {ref}) is not set")
        return value
    if scheme == "keyring":
        service, _, name = rest.partition("/")
        try:
            import keyring
            from keyring.errors import KeyringError
        except ImportError:  # pragma: no cover - keyring is a core dependency
            raise SecretError(f"account {account_name!r}: {ref} needs the keyring package") from None
        try:
            value = keyring.get_password(service, name)
        except KeyringError as exc:
            raise SecretError(f"account {account_name!r}: keyring lookup {ref} failed: {exc}") from None
        if not value:
            raise SecretError(f"account {account_name!r}: no password in the keyring for {ref}")
        return value
    if scheme == "prompt":
        raise SecretError(
            f"account {account_name!r}: the secret is {ref!r}, so the password must be given when running "
            "(notebook password field, or --secret env:VAR / keyring:SERVICE/NAME)"
        )
    raise SecretError(f"account {account_name!r}: unknown secret reference {ref!r}")
