"""Django's PostgreSQL backend with a client-side bound on every wait for the server.

Why: `connect_timeout` bounds a connection attempt and `statement_timeout` bounds a statement, but
the latter is enforced by the server. A server that stops answering (a frozen host, a `kill -STOP`,
a partition that loses replies) enforces nothing, and TCP keepalives or `tcp_user_timeout` do not
help when the server's kernel still acknowledges what is sent: measured, a query on a STOPped
cluster waits forever with both set. So the client bounds each wait itself: psycopg's
`Connection.wait` takes a timeout; a wait that runs out closes the connection (its protocol
state is unknown) and raises `OperationalError`, which the 503 middleware answers
(`config.outages`). The bound (`DB_ANSWER_TIMEOUT_SECONDS`, `OPTIONS["answer_timeout"]`) is
set above `statement_timeout`, so a slow statement is still cancelled by the server first and
the connection stays usable; only a server that does not answer at all hits it.

Used as `ENGINE` by `config.settings` for `postgres://` URLs; psycopg 3 only.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.db.backends.postgresql import base
from psycopg import errors as pg_errors


class BoundedConnection(psycopg.Connection):
    """A psycopg connection whose every wait for the server ends after `answer_timeout` s."""

    answer_timeout: float | None = None

    def wait(self, gen: Any, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        bounded = timeout is None and self.answer_timeout
        if bounded:
            timeout = self.answer_timeout
        try:
            return super().wait(gen, *args, timeout=timeout, **kwargs)
        except pg_errors._WaitTimeout:  # psycopg's own signal for a wait that ran out
            if not bounded:
                raise
            self.close()
            raise psycopg.OperationalError(
                f"PostgreSQL did not answer within {timeout:g} s; the connection was closed."
            ) from None


class _Psycopg:
    """psycopg as the wrapper's `Database` (exceptions, types, `connect`), except that `connect`
    makes a `BoundedConnection`. Django calls `self.Database.connect(**params)` to open one."""

    connect = BoundedConnection.connect

    def __getattr__(self, name: str) -> Any:
        return getattr(psycopg, name)


class DatabaseWrapper(base.DatabaseWrapper):
    Database = _Psycopg()

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params.pop("answer_timeout", None)  # ours, not a libpq parameter
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        if isinstance(connection, BoundedConnection):  # not from a pool of plain connections
            connection.answer_timeout = self.settings_dict["OPTIONS"].get("answer_timeout")
        return connection
