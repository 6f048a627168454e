"""Where OAuth2 grants live: the system keyring, or one file readable only by its owner.

``VMAILKIT_TOKEN_STORE`` chooses: ``keyring`` (the default where a keyring backend exists) or
``file:PATH`` (for headless machines, cron and papermill). A grant never lands in DuckDB, a notebook,
a log or a traceback: :class:`Grant` hides its tokens from ``repr``.

The file is JSON, one entry per account, created with mode 0600 and replaced atomically (a temp
file in the same folder, then rename); a file that others can read, a symlink, or a file owned by
someone else is refused. Refreshing a grant happens under an exclusive lock (``flock`` on
``PATH.lock``, or a lock file in the user's runtime folder for the keyring), so two processes never
use one refresh token twice: providers that rotate refresh tokens revoke a grant whose old token
is replayed.
"""
from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ValidationError

ENV = "VMAILKIT_TOKEN_STORE"
KEYRING_SERVICE = "vmailkit-oauth"

try:  # POSIX file locks; elsewhere the lock is a no-op (one process at a time is then the user's care)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass
class Grant:
    """One account's OAuth2 grant: the refresh token and the current access token (hidden from repr)."""

    refresh_token: str = field(repr=False)
    access_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None      # epoch seconds
    refreshed_at: float | None = None    # epoch seconds of the last refresh (or sign-in)
    scope: str | None = None

    def fresh(self, margin: float = 120.0) -> bool:
        """True while the access token is valid for at least ``margin`` more seconds."""
        return bool(self.access_token) and self.expires_at is not None and self.expires_at - margin > time.time()

    def to_json(self) -> dict[str, object]:
        """The stored form."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "Grant":
        """Read the stored form; raises :class:`ValidationError` for something else."""
        if not isinstance(data, dict) or not isinstance(data.get("refresh_token"), str):
            raise ValidationError("token_store", "the stored sign-in is damaged: sign in again")
        return cls(refresh_token=str(data["refresh_token"]),
                   access_token=data.get("access_token") if isinstance(data.get("access_token"), str) else None,
                   expires_at=_num(data.get("expires_at")), refreshed_at=_num(data.get("refreshed_at")),
                   scope=data.get("scope") if isinstance(data.get("scope"), str) else None)


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


class TokenStore:
    """Keeps one :class:`Grant` per account name."""

    def load(self, account: str) -> Grant | None:  # pragma: no cover - interface
        """The account's grant, or None before sign-in."""
        raise NotImplementedError

    def save(self, account: str, grant: Grant) -> None:  # pragma: no cover - interface
        """Store (replace) the account's grant, durably, before returning."""
        raise NotImplementedError

    def delete(self, account: str) -> None:  # pragma: no cover - interface
        """Forget the account's grant (sign out); no error when there is none."""
        raise NotImplementedError

    def _lock_path(self) -> Path:  # pragma: no cover - interface
        raise NotImplementedError

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's exclusive lock (other processes wait) while refreshing a grant."""
        if fcntl is None:  # pragma: no cover
            yield
            return
        path = self._lock_path()
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def describe(self) -> str:  # pragma: no cover - interface
        """Where grants are kept, in plain words."""
        raise NotImplementedError


class FileTokenStore(TokenStore):
    """Grants in one JSON file that only its owner can read (mode 0600)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()

    def describe(self) -> str:
        return f"the file {self.path}"

    def _lock_path(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.path.with_name(self.path.name + ".lock")

    def _check(self) -> bool:
        """True when the file exists and is safe to read; raises :class:`ValidationError` otherwise."""
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            raise ValidationError("token_store", f"{self.path} is not a plain file (a link?): refusing to use it")
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise ValidationError("token_store", f"{self.path} belongs to another user: refusing to use it")
        if st.st_mode & 0o077:
            raise ValidationError(
                "token_store", f"{self.path} can be read by other users; make it private (chmod 600) and try again")
        return True

    def _read_all(self) -> dict[str, dict[str, object]]:
        if not self._check():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            raise ValidationError("token_store", f"{self.path} is damaged: remove it and sign in again") from None
        if not isinstance(data, dict):
            raise ValidationError("token_store", f"{self.path} is damaged: remove it and sign in again")
        return data

    def _write_all(self, data: dict[str, dict[str, object]]) -> None:
        self._check()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def load(self, account: str) -> Grant | None:
        entry = self._read_all().get(account)
        return None if entry is None else Grant.from_json(entry)

    def save(self, account: str, grant: Grant) -> None:
        data = self._read_all()
        data[account] = grant.to_json()
        self._write_all(data)

    def delete(self, account: str) -> None:
        data = self._read_all()
        if data.pop(account, None) is not None:
            self._write_all(data)


class KeyringTokenStore(TokenStore):
    """Grants in the system keyring (Secret Service, macOS Keychain, Windows Credential Locker)."""

    def describe(self) -> str:
        return "the system keyring"

    def _lock_path(self) -> Path:
        base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
        return base / f"vmailkit-oauth-{os.getuid() if hasattr(os, 'getuid') else 0}.lock"

    def load(self, account: str) -> Grant | None:
        import keyring

        text = keyring.get_password(KEYRING_SERVICE, account)
        if text is None:
            return None
        try:
            return Grant.from_json(json.loads(text))
        except ValueError:
            raise ValidationError("token_store", "the sign-in kept in the keyring is damaged: sign in again") from None

    def save(self, account: str, grant: Grant) -> None:
        import keyring

        keyring.set_password(KEYRING_SERVICE, account, json.dumps(grant.to_json()))

    def delete(self, account: str) -> None:
        import keyring
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(KEYRING_SERVICE, account)


def _keyring_usable() -> bool:
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception:  # noqa: BLE001 - no keyring at all
        return False
    return not isinstance(backend, fail.Keyring) and "null" not in type(backend).__module__.lower()


def token_store(spec: str | None = None) -> TokenStore:
    """The token store named by ``spec`` (default: ``$VMAILKIT_TOKEN_STORE``, else the keyring).

    ``keyring`` or ``file:PATH``. Raises :class:`ValidationError` (field ``token_store``) for another
    value, or when no keyring backend exists and no file was chosen.
    """
    spec = (spec if spec is not None else os.environ.get(ENV, "")).strip()
    if spec.startswith("file:"):
        path = spec[len("file:"):].strip()
        if not path:
            raise ValidationError("token_store", "file: needs a path, e.g. file:/var/lib/vmailkit/tokens.json")
        return FileTokenStore(path)
    if spec in ("", "keyring"):
        if not _keyring_usable():
            raise ValidationError(
                "token_store", f"this machine has no keyring to keep sign-ins in; set {ENV}=file:/path/to/tokens.json")
        return KeyringTokenStore()
    raise ValidationError("token_store", f"{spec!r} is not a token store; use keyring or file:PATH")
