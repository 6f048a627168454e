"""Which accounts need attention: failing for too long, or an OAuth2 grant left unrefreshed.

Microsoft refresh tokens die after 90 days unused; an account that looks "connected" while nothing
arrives is the failure people notice last. :func:`problems` reads the health rows the check and the
download keep (``account_health``) and says, in plain words, what to do about each account at risk.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from .store import Store

#: Defaults: an account failing for a day, a grant not refreshed for 60 days.
FAILING_FOR = timedelta(hours=24)
GRANT_AGE = timedelta(days=60)


def _when(value: object) -> datetime | None:
    if value is None or pd.isna(value):  # type: ignore[arg-type]
        return None
    return pd.Timestamp(value).to_pydatetime()


def problems(store: Store, *, failing_for: timedelta = FAILING_FOR, grant_age: timedelta = GRANT_AGE,
             now: datetime | None = None) -> list[str]:
    """One line per account at risk (empty: all is well), in plain words with what to do."""
    now = now or datetime.now(timezone.utc)
    found = []
    for row in store.health().itertuples(index=False):
        since = _when(row.failing_since)
        if since is not None and now - since >= failing_for:
            hours = int((now - since).total_seconds() // 3600)
            found.append(f"{row.account} has been failing for {hours} hours: {row.last_error}")
        if row.auth == "oauth2":
            refreshed = _when(row.grant_refreshed_at)
            if refreshed is None:
                found.append(f"{row.account} has not been signed in yet: run `vmailkit account signin {row.account}`")
            elif now - refreshed >= grant_age:
                days = (now - refreshed).days
                found.append(f"the sign-in of {row.account} was last renewed {days} days ago; it may expire soon: "
                             f"run a check, or `vmailkit account signin {row.account}`")
    return found
