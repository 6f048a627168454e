"""The accounts panel: accounts form with "Test connection", users, and subscriptions."""
from __future__ import annotations

from typing import Any

import ipywidgets as W

from ..accounts import Account, default_port, make_account, make_oauth_settings
from ..errors import MailServerError, NotFoundError, SecretError, ValidationError, VmailkitError
from ..oauth import TokenStore, token_store
from ..oauth.signin import sign_in_device
from ..sync import test_account
from .common import Panel, PasswordBook, Worker, esc, labelled, note

NEW = "__new__"

HINT = """
<details class="vmk-hint"><summary><b>Before you start: IMAP/POP access and app passwords</b></summary>
<ul>
<li>Most providers switch IMAP or POP access off until you enable it in the mailbox's web settings
(Gmail: <i>Settings → Forwarding and POP/IMAP</i>; Outlook.com / Microsoft 365: <i>Settings → Mail →
Forwarding and IMAP</i>, or ask your administrator).</li>
<li>Mailboxes with two-step verification refuse your normal password: create an <b>app password</b>
in the account's security settings and use that here.</li>
<li>Prefer <b>SSL</b> (port 993 for IMAP, 995 for POP3). <b>STARTTLS</b> upgrades a plain connection
(143/110); vmailkit never falls back to plaintext. Plain (neither ticked) only for a server on your
own network.</li>
<li>The password is never stored. Choose <i>type it in</i> (kept in this notebook's memory until the
kernel stops), an <i>environment variable</i>, or the <i>system keyring</i>: only the name of the
variable or keyring entry is saved.</li>
</ul></details>
"""

SECRET_KINDS = [
    ("Type it in (kept in memory only)", "prompt"),
    ("Environment variable", "env"),
    ("System keyring (SERVICE/NAME)", "keyring"),
    ("Sign in with OAuth2 (Microsoft 365, Google, other)", "oauth2"),
]
OAUTH_PROVIDERS = [("Microsoft 365", "microsoft"), ("Google", "google"), ("Other (standard OAuth2)", "generic")]


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value) and str(value) != "NaT"


def _short(value: Any) -> str:
    import pandas as pd

    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M") if _given(value) else ""


class AccountsPanel(Panel):
    """Create, edit, delete and test accounts; add users; subscribe users to accounts.

    ``AccountsPanel(store, user=None, passwords=None)``: ``passwords`` is the in-memory
    :class:`PasswordBook` the typed passwords go to (share it with the incoming-mail panel).
    Public methods: :meth:`refresh`, :meth:`load`, :meth:`new`, :meth:`save`, :meth:`delete`,
    :meth:`test_connection`, :meth:`add_user`, :meth:`wait`.
    """

    def __init__(self, store: Any, *, user: str | None = None, passwords: PasswordBook | None = None,
                 tokens: TokenStore | None = None) -> None:
        super().__init__()
        self.store = store
        self.passwords = passwords if passwords is not None else PasswordBook()
        self._tokens = tokens
        self._loading = False
        wide = W.Layout(width="28em")

        # -- account form -------------------------------------------------------------------
        self.account_picker = W.Dropdown(options=[("(new account)", NEW)], value=NEW, layout=wide)
        self.name = W.Text(placeholder="e.g. office", layout=wide)
        self.kind = W.ToggleButtons(options=[("General (shared)", "general"), ("Personal", "personal")], value="general")
        self.owner = W.Dropdown(options=[], layout=wide)
        self.protocol = W.Dropdown(options=[("IMAP", "imap"), ("POP3", "pop3")], value="imap", layout=W.Layout(width="10em"))
        self.ssl = W.Checkbox(value=True, description="SSL/TLS", indent=False, layout=W.Layout(width="8em"))
        self.starttls = W.Checkbox(value=False, description="STARTTLS", indent=False, layout=W.Layout(width="8em"))
        self.port = W.IntText(value=993, disabled=True, layout=W.Layout(width="7em"))
        self.custom_port = W.Checkbox(value=False, description="custom port", indent=False, layout=W.Layout(width="10em"))
        self.host = W.Text(placeholder="imap.example.com", layout=wide)
        self.address = W.Text(placeholder="office@example.com", layout=wide)
        self.login = W.Text(placeholder="(same as the address)", layout=wide)
        self.folder = W.Text(value="INBOX", layout=wide)
        self.ca_file = W.Text(placeholder="(optional) extra CA certificate file", layout=wide)
        self.secret_kind = W.Dropdown(options=SECRET_KINDS, value="prompt", layout=wide)
        self.secret_ref = W.Text(placeholder="MAIL_PASSWORD", layout=wide)
        self.password = W.Password(placeholder="password or app password", layout=wide)
        self.password.add_class("vmk-password")
        self.oauth_provider = W.Dropdown(options=OAUTH_PROVIDERS, value="microsoft", layout=wide)
        self.client_id = W.Text(placeholder="application (client) id from the app registration", layout=wide)
        self.client_secret = W.Text(placeholder="(optional) env:VARNAME or keyring:SERVICE/NAME", layout=wide)
        self.tenant = W.Text(placeholder="(Microsoft) tenant id or domain, e.g. contoso.com", layout=wide)
        self.token_url = W.Text(placeholder="https://… token endpoint", layout=wide)
        self.device_url = W.Text(placeholder="https://… device authorization endpoint", layout=wide)
        self.scope = W.Text(placeholder="(default: the provider's mail scopes)", layout=wide)
        self.signin_button = W.Button(description="Sign in", icon="sign-in")
        self.signin_code = W.HTML()
        self.signin_code.add_class("vmk-signin-code")
        self.save_button = W.Button(description="Save account", icon="save", button_style="primary")
        self.test_button = W.Button(description="Test connection", icon="plug")
        self.delete_button = W.Button(description="Delete", icon="trash", button_style="danger")
        self.new_button = W.Button(description="New", icon="plus")
        self.confirm_delete = W.Button(description="Yes, delete", button_style="danger")
        self.cancel_delete = W.Button(description="No")
        self.confirm_box = W.HBox([W.HTML(), self.confirm_delete, self.cancel_delete], layout=W.Layout(display="none"))
        self.test_result = W.HTML()
        self.test_result.add_class("vmk-test-result")
        self.worker = Worker(self, cancellable=False)
        self.last_test: tuple[bool, str] | None = None

        self.owner_row = labelled("Owner", self.owner)
        self.folder_row = labelled("Folder", self.folder)
        self.secret_ref_row = labelled("Reference", self.secret_ref)
        self.password_row = labelled("Password", self.password)
        self.tenant_row = labelled("Tenant", self.tenant)
        self.generic_rows = W.VBox([labelled("Token URL", self.token_url), labelled("Device URL", self.device_url),
                                    labelled("Scopes", self.scope)])
        self.oauth_box = W.VBox([labelled("Provider", self.oauth_provider), labelled("Client id", self.client_id),
                                 labelled("Client secret", self.client_secret), self.tenant_row, self.generic_rows,
                                 W.HBox([self.signin_button]), self.signin_code])
        form = W.VBox([
            labelled("Account", self.account_picker),
            labelled("Name", self.name),
            labelled("Kind", self.kind),
            self.owner_row,
            labelled("Protocol", W.HBox([self.protocol, self.ssl, self.starttls])),
            labelled("Port", W.HBox([self.port, self.custom_port])),
            labelled("Host", self.host),
            labelled("Address", self.address),
            labelled("Login", self.login),
            self.folder_row,
            labelled("CA file", self.ca_file),
            labelled("Secret", self.secret_kind),
            self.secret_ref_row,
            self.password_row,
            self.oauth_box,
            W.HBox([self.save_button, self.test_button, self.new_button, self.delete_button]),
            self.confirm_box,
            self.worker.widget,
            self.test_result,
        ])

        # -- users ----------------------------------------------------------------------------
        self.new_user_name = W.Text(placeholder="name, e.g. anna", layout=W.Layout(width="14em"))
        self.new_user_email = W.Text(placeholder="anna@example.com (optional)", layout=W.Layout(width="18em"))
        self.add_user_button = W.Button(description="Add user", icon="user-plus")
        self.users_table = W.HTML()
        users_box = W.VBox([W.HBox([self.new_user_name, self.new_user_email, self.add_user_button]), self.users_table])

        # -- subscriptions --------------------------------------------------------------------
        self.sub_user = W.Dropdown(options=[], description="User", layout=W.Layout(width="20em"))
        self.other_user = W.Dropdown(options=[], description="Colleague", layout=W.Layout(width="20em"))
        self.general_box = W.VBox([])
        self.own_box = W.VBox([])
        self.other_box = W.VBox([])
        self.sub_toggles: dict[str, W.Checkbox] = {}
        subs = W.VBox([
            self.sub_user,
            W.HTML("<b>General accounts</b>"), self.general_box,
            W.HTML("<b>Own personal accounts</b>"), self.own_box,
            W.HTML("<b>Colleagues' personal accounts</b>"), self.other_user, self.other_box,
        ])

        self.accounts_table = W.HTML()
        tabs = W.Tab(children=[W.VBox([form, self.accounts_table]), users_box, subs])
        for i, title in enumerate(("Accounts", "Users", "Subscriptions")):
            tabs.set_title(i, title)
        self.tabs = tabs
        self.widget = W.VBox([W.HTML(HINT), tabs, self.message, self.log])
        self.widget.add_class("vmk-accounts-panel")

        # -- events ---------------------------------------------------------------------------
        self.account_picker.observe(self.guard(self._picked, "open account"), names="value")
        self.kind.observe(self.guard(lambda _c: self._sync_form()), names="value")
        self.protocol.observe(self.guard(lambda _c: self._security_changed(None)), names="value")
        self.ssl.observe(self.guard(lambda c: self._security_changed("ssl" if c["new"] else None)), names="value")
        self.starttls.observe(self.guard(lambda c: self._security_changed("starttls" if c["new"] else None)), names="value")
        self.custom_port.observe(self.guard(lambda _c: self._security_changed(None)), names="value")
        self.secret_kind.observe(self.guard(lambda _c: self._sync_form()), names="value")
        self.oauth_provider.observe(self.guard(lambda _c: self._sync_form()), names="value")
        self.signin_button.on_click(self.guard(lambda _b: self.sign_in(), "sign in"))
        self.save_button.on_click(self.guard(lambda _b: self.save(), "save account"))
        self.test_button.on_click(self.guard(lambda _b: self.test_connection(), "test connection"))
        self.new_button.on_click(self.guard(lambda _b: self.new()))
        self.delete_button.on_click(self.guard(lambda _b: self._ask_delete(), "delete account"))
        self.confirm_delete.on_click(self.guard(lambda _b: self.delete(), "delete account"))
        self.cancel_delete.on_click(lambda _b: setattr(self.confirm_box.layout, "display", "none"))
        self.add_user_button.on_click(self.guard(lambda _b: self.add_user(), "add user"))
        self.sub_user.observe(self.guard(lambda _c: self._show_subscriptions(), "subscriptions"), names="value")
        self.other_user.observe(self.guard(lambda _c: self._show_subscriptions(), "subscriptions"), names="value")

        self.refresh()
        if user is not None:
            self.sub_user.value = user
        self._sync_form()

    # -- form helpers ---------------------------------------------------------------------------
    @property
    def security(self) -> str:
        """``ssl``, ``starttls`` or ``plain`` from the two toggles."""
        return "ssl" if self.ssl.value else "starttls" if self.starttls.value else "plain"

    def _security_changed(self, chosen: str | None) -> None:
        if self._loading:
            return
        self._loading = True
        try:
            if chosen == "ssl":
                self.starttls.value = False
            elif chosen == "starttls":
                self.ssl.value = False
        finally:
            self._loading = False
        self._sync_form()

    def _sync_form(self) -> None:
        """Show the fields that apply and fill the default port unless a custom one is chosen."""
        self.owner_row.layout.display = "" if self.kind.value == "personal" else "none"
        self.folder_row.layout.display = "" if self.protocol.value == "imap" else "none"
        oauth = self.secret_kind.value == "oauth2"
        self.secret_ref_row.layout.display = "none" if self.secret_kind.value in ("prompt", "oauth2") else ""
        self.password_row.layout.display = "" if self.secret_kind.value == "prompt" else "none"
        self.oauth_box.layout.display = "" if oauth else "none"
        self.tenant_row.layout.display = "" if self.oauth_provider.value == "microsoft" else "none"
        self.generic_rows.layout.display = "" if self.oauth_provider.value == "generic" else "none"
        self.secret_ref.placeholder = "MAIL_PASSWORD" if self.secret_kind.value == "env" else "vmailkit/office@example.com"
        self.port.disabled = not self.custom_port.value
        if not self.custom_port.value and not self._loading:
            self.port.value = default_port(self.protocol.value, self.security)

    def _secret_reference(self) -> str:
        kind, ref = self.secret_kind.value, self.secret_ref.value.strip()
        if kind in ("prompt", "oauth2"):
            return "prompt:"
        if not ref:
            raise ValidationError("secret", "name the environment variable" if kind == "env" else "give the keyring SERVICE/NAME")
        if ref.startswith(f"{kind}:"):
            return ref
        return f"{kind}:{ref}"

    def account_from_form(self) -> Account:
        """The account described by the form, validated (raises :class:`ValidationError`)."""
        return make_account(
            self.name.value, kind=self.kind.value, protocol=self.protocol.value, host=self.host.value,
            security=self.security, address=self.address.value, secret=self._secret_reference(),
            port=self.port.value if self.custom_port.value else None, login=self.login.value or None,
            owner=self.owner.value if self.kind.value == "personal" else None, ca_file=self.ca_file.value.strip() or None,
            folder=self.folder.value if self.protocol.value == "imap" else None,
            oauth=make_oauth_settings(
                provider=self.oauth_provider.value, client_id=self.client_id.value,
                client_secret=self.client_secret.value or None, tenant=self.tenant.value or None,
                token_url=self.token_url.value or None, device_url=self.device_url.value or None,
                scope=self.scope.value or None) if self.secret_kind.value == "oauth2" else None,
        )

    @property
    def tokens(self) -> TokenStore:
        """Where sign-ins are kept (``$VMAILKIT_TOKEN_STORE``, unless the panel was given one)."""
        if self._tokens is None:
            self._tokens = token_store()
        return self._tokens

    # -- lists ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload accounts and users from the store."""
        accounts = self.store.list_accounts()
        users = list(self.store.users()["name"])
        current = self.account_picker.value
        self._loading = True
        try:
            self.account_picker.options = [("(new account)", NEW)] + [(f"{a.name} ({a.kind}, {a.protocol})", a.name) for a in accounts]
            self.account_picker.value = current if current in [NEW] + [a.name for a in accounts] else NEW
            self.owner.options = users
            sub_user = self.sub_user.value
            self.sub_user.options = users
            if sub_user in users:
                self.sub_user.value = sub_user
        finally:
            self._loading = False
        health = {r.account: r for r in self.store.health().itertuples(index=False)}

        def state(a: Account) -> str:
            h = health.get(a.name)
            if h is None:
                return ""
            if _given(h.failing_since):
                return note(f"failing since {_short(h.failing_since)}: {h.last_error}", "error")
            last = max((t for t in (h.last_check_at, h.last_download_at) if _given(t)), default=None)
            return note(f"worked {_short(last)}", "ok") if last is not None else ""

        rows = "".join(
            f"<tr><td>{esc(a.name)}</td><td>{esc(a.kind)}</td><td>{esc(a.owner or '')}</td><td>{esc(a.protocol)}</td>"
            f"<td>{esc(a.security)}</td><td>{esc(a.host)}:{a.port}</td><td>{esc(a.address)}</td>"
            f"<td>{esc(a.oauth.provider + ' sign-in' if a.oauth else a.secret_ref)}</td><td>{state(a)}</td></tr>"
            for a in accounts
        )
        self.accounts_table.value = (
            '<table class="vmk-accounts"><tr><th>name</th><th>kind</th><th>owner</th><th>protocol</th><th>security</th>'
            f"<th>server</th><th>address</th><th>secret</th><th>health</th></tr>{rows}</table>"
            if accounts else "<i>No accounts yet.</i>"
        )
        frame = self.store.users()
        self.users_table.value = "".join(
            ["<table class='vmk-users'><tr><th>user</th><th>e-mail</th></tr>"]
            + [f"<tr><td>{esc(r.name)}</td><td>{esc(r.email)}</td></tr>" for r in frame.itertuples()]
            + ["</table>"]
        ) if len(frame) else "<i>No users yet.</i>"
        self._show_subscriptions()

    def _picked(self, change: dict[str, Any]) -> None:
        if self._loading:
            return
        if change["new"] == NEW:
            self.new()
        else:
            self.load(change["new"])

    def new(self) -> None:
        """Empty the form for a new account."""
        self._loading = True
        try:
            self.account_picker.value = NEW
            for w in (self.name, self.host, self.address, self.login, self.ca_file, self.secret_ref, self.password,
                      self.client_id, self.client_secret, self.tenant, self.token_url, self.device_url, self.scope):
                w.value = ""
            self.signin_code.value = ""
            self.folder.value = "INBOX"
            self.kind.value, self.protocol.value = "general", "imap"
            self.ssl.value, self.starttls.value, self.custom_port.value = True, False, False
            self.secret_kind.value = "prompt"
        finally:
            self._loading = False
        self.test_result.value = ""
        self._sync_form()

    def load(self, name: str) -> None:
        """Fill the form with a stored account."""
        a = self.store.get_account(name)
        scheme, _, rest = (a.secret_ref or "prompt:").partition(":")
        self._loading = True
        try:
            self.account_picker.value = a.name
            self.name.value, self.kind.value, self.protocol.value = a.name, a.kind, a.protocol
            if a.owner:
                self.owner.value = a.owner
            self.ssl.value, self.starttls.value = a.security == "ssl", a.security == "starttls"
            self.custom_port.value = a.port != default_port(a.protocol, a.security)
            self.port.value = a.port
            self.host.value, self.address.value = a.host, a.address
            self.login.value = "" if a.login == a.address else a.login
            self.folder.value, self.ca_file.value = a.folder or "INBOX", a.ca_file or ""
            self.secret_kind.value = "oauth2" if a.oauth else scheme if scheme in ("env", "keyring") else "prompt"
            self.secret_ref.value = rest if scheme in ("env", "keyring") and not a.oauth else ""
            self.password.value = ""
            o = a.oauth
            self.oauth_provider.value = o.provider if o else "microsoft"
            self.client_id.value = o.client_id if o else ""
            self.client_secret.value = (o.client_secret_ref or "") if o else ""
            self.tenant.value = (o.tenant or "") if o else ""
            self.token_url.value = (o.token_url or "") if o and o.provider == "generic" else ""
            self.device_url.value = (o.device_url or "") if o else ""
            self.scope.value = " ".join(o.scopes) if o and o.provider == "generic" else ""
        finally:
            self._loading = False
        self.test_result.value = ""
        self._sync_form()

    # -- actions --------------------------------------------------------------------------------
    def save(self) -> Account:
        """Add the account, or update it when one with that name exists."""
        account = self.account_from_form()
        try:
            self.store.get_account(account.name)
            exists = True
        except NotFoundError:
            exists = False
        saved = self.store.update_account(account) if exists else self.store.add_account(account)
        if self.secret_kind.value == "prompt":
            self.passwords.take_from(saved.name, self.password)
        self.refresh()
        self.load(saved.name)
        self.say(f"Account {saved.name} {'updated' if exists else 'added'}.", "ok")
        return saved

    def _ask_delete(self) -> None:
        name = self.account_picker.value
        if name == NEW:
            raise ValidationError("account", "choose a saved account to delete")
        self.confirm_box.children[0].value = note(f"Delete account {name}? Its stored mail is kept.", "warn")
        self.confirm_box.layout.display = ""

    def delete(self) -> None:
        """Delete the account chosen in the form (its stored mail is kept)."""
        name = self.account_picker.value
        self.confirm_box.layout.display = "none"
        if name == NEW:
            raise ValidationError("account", "choose a saved account to delete")
        self.store.delete_account(name)
        self.passwords.pop(name, None)
        self.refresh()
        self.new()
        self.say(f"Account {name} deleted; its mail stays in the database.", "ok")

    def test_connection(self) -> None:
        """Connect and log in with the form's settings (saved or not), in a worker thread."""
        account = self.account_from_form()
        passwords: dict[str, str] = {}
        if self.secret_kind.value == "prompt":
            self.passwords.take_from(account.name, self.password)
            if account.name in self.passwords:
                passwords[account.name] = self.passwords[account.name]
        self.test_result.value = note(f"Connecting to {account.host}:{account.port} …")

        def job(_progress: Any, _cancel: Any) -> tuple[bool, str]:
            try:
                return True, test_account(account, passwords)
            except (MailServerError, SecretError) as exc:
                reason = exc.reason if isinstance(exc, MailServerError) else "secret"
                return False, f"Connection failed ({reason}): {exc}"

        def done(result: tuple[bool, str]) -> None:
            ok, text = result
            self.last_test = result
            self.test_result.value = note(text, "ok" if ok else "error")

        self.worker.start(job, done, label="test connection", cancellable=False)

    def sign_in(self) -> None:
        """Sign the saved OAuth2 account in with a device code shown in the panel (in a worker thread)."""
        name = self.account_picker.value
        if name == NEW:
            raise ValidationError("account", "save the account first, then sign it in")
        account = self.store.get_account(name)
        if account.oauth is None:
            raise ValidationError("account", f"{name} signs in with a password; choose OAuth2 and save it first")
        tokens = self.tokens
        self.signin_code.value = note(f"Asking {account.oauth.service} for a sign-in code …")

        def show(code: Any) -> None:
            self.signin_code.value = (
                f'<div class="vmk-code">To sign in <b>{esc(name)}</b>, open '
                f'<a href="{esc(code.verification_uri)}" target="_blank" rel="noopener noreferrer">'
                f'{esc(code.verification_uri)}</a> and enter the code <b class="vmk-user-code">{esc(code.user_code)}</b>.'
                "<br>Waiting for the sign-in …</div>")

        def job(_progress: Any, cancel: Any) -> tuple[bool, str]:
            try:
                sign_in_device(account, tokens, show, cancel=cancel)
            except VmailkitError as exc:
                return False, f"The sign-in of {name} did not work: {exc}"
            return True, f"{name} is signed in; the sign-in is kept in {tokens.describe()}."

        def done(result: tuple[bool, str]) -> None:
            ok, text = result
            self.signin_code.value = note(text, "ok" if ok else "error")
            self.refresh()

        self.worker.start(job, done, label="sign in", cancellable=True)

    def add_user(self) -> None:
        """Add the user typed in the Users tab."""
        user = self.store.add_user(self.new_user_name.value, self.new_user_email.value or None)
        self.new_user_name.value = self.new_user_email.value = ""
        self.refresh()
        self.say(f"User {user.name} added.", "ok")

    # -- subscriptions --------------------------------------------------------------------------
    def _toggle(self, account: str, value: bool) -> None:
        user = self.sub_user.value
        if not user:
            raise ValidationError("user", "choose a user first")
        if value:
            self.store.subscribe(user, account)
        else:
            self.store.unsubscribe(user, account)
        self.say(f"{user} {'subscribes to' if value else 'no longer subscribes to'} {account}.", "ok")

    def _show_subscriptions(self) -> None:
        if self._loading and not self.sub_user.options:
            return
        user = self.sub_user.value
        accounts = self.store.list_accounts()
        others = [u for u in self.sub_user.options if u != user]
        current_other = self.other_user.value
        self.other_user.unobserve_all("value")
        self.other_user.options = others
        self.other_user.value = current_other if current_other in others else (others[0] if others else None)
        self.other_user.observe(self.guard(lambda _c: self._show_subscriptions(), "subscriptions"), names="value")
        subscribed = {a.name for a in self.store.subscribed_accounts(user)} if user else set()
        self.sub_toggles = {}

        def boxes(items: list[Account]) -> list[W.Widget]:
            out: list[W.Widget] = []
            for a in items:
                box = W.Checkbox(value=a.name in subscribed, description=f"{a.name} ({a.address})", indent=False,
                                 disabled=not user, layout=W.Layout(width="30em"))
                box.add_class("vmk-subscription")
                box.observe(self.guard(lambda c, n=a.name: self._toggle(n, c["new"]), "subscription"), names="value")
                self.sub_toggles[a.name] = box
                out.append(box)
            return out or [W.HTML("<i>none</i>")]

        self.general_box.children = boxes([a for a in accounts if a.kind == "general"])
        self.own_box.children = boxes([a for a in accounts if a.kind == "personal" and a.owner == user])
        other = self.other_user.value
        self.other_box.children = boxes([a for a in accounts if a.kind == "personal" and other and a.owner == other])

    def wait(self, timeout: float | None = 60) -> bool:
        """Wait for a running connection test."""
        return self.worker.wait(timeout)
