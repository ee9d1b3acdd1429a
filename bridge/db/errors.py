"""The one mapping of PostgreSQL driver errors: what asyncpg raises, and what it means to us.

Two questions are asked of a failed query, and each has one answer here:

- *Did the database fail us?* `DB_ERRORS` is every exception asyncpg raises when a query did
  not happen: the server answered with an error (`asyncpg.PostgresError`, which also covers a
  lost connection, too many clients or an admin shutdown), the driver refused the call
  (`asyncpg.InterfaceError`: connection closed, pool closing, an argument it cannot encode),
  or the socket failed (`OSError`: refused, reset, unreachable). `TimeoutError` is a subclass
  of `OSError` (and `asyncio.TimeoutError` is `TimeoutError` since 3.11), so connect and
  command timeouts are in the tuple already; modules that listed it apart caught nothing more.
  `map_db_errors` turns these into `CrmUnavailable`, which the web layer answers with 503.
- *Is it an outage or bad data?* `is_outage` says whether retrying later can help (the
  server is unreachable) or not (PostgreSQL refused this data: class 22, 23 or 42), for the
  loops that keep work and retry (the call-record writer, the outbox).

`asyncpg.InternalClientError` (a desynchronised protocol, a stale statement cache) is not
in `DB_ERRORS`: it is a driver fault rather than an answer, and the one place that must
survive it (throwing away a LISTEN connection, `bridge.crm.listener`) names it there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from bridge.errors import CrmUnavailable

__all__ = ["DB_ERRORS", "DB_OUTAGE", "is_outage", "map_db_errors"]

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# The database cannot be reached now (whatever the query): the admin API answers 503.
DB_OUTAGE = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError)


@contextmanager
def map_db_errors(doing: str) -> Iterator[None]:
    """Raise `CrmUnavailable("<doing>: <driver message>")` for any of `DB_ERRORS` inside.

    `doing` says what failed in the words of the caller ("cannot read routing rules"); the
    driver's exception stays attached as `__cause__`. Anything else passes through, so a
    call site that gives some driver errors its own meaning (a unique violation is a
    conflict) catches them inside the block, before they reach this mapping.
    """
    try:
        yield
    except DB_ERRORS as exc:
        raise CrmUnavailable(f"{doing}: {exc}") from exc


def is_outage(exc: BaseException) -> bool:
    """True when `exc` means "PostgreSQL unreachable now" rather than "this data is bad"."""
    if isinstance(exc, asyncpg.PostgresError) and not isinstance(
        exc, asyncpg.PostgresConnectionError
    ):
        state = getattr(exc, "sqlstate", "") or ""
        return not state.startswith(("22", "23", "42"))
    return isinstance(exc, DB_OUTAGE)
