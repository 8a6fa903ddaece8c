"""Keyset pagination with opaque, signed cursors (SPEC §4 lists; the audit log's deep pages).

A cursor encodes the last row's id, signed so a forged or edited cursor is refused (400) instead
of silently paging somewhere else. Pages are `id`-ordered slices on an index: the cost of page N
does not grow with N (no OFFSET).
"""

from __future__ import annotations

from django.core import signing
from django.db.models import QuerySet

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_SALT = "gatehouse.cursor"


class InvalidPageRequest(ValueError):
    """A bad `limit` or `cursor`; the message is one sentence a client can act on."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if raw is None or raw == "":
        return default
    # ASCII digits only: "²".isdigit() is true but int("²") fails, and int() refuses very long
    # digit strings; both must be a 400, not a 500.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6 or not 1 <= int(raw) <= maximum:
        raise InvalidPageRequest("limit", f"limit must be a whole number from 1 to {maximum}.")
    return int(raw)


def encode_cursor(last_id: int, *, scope: str) -> str:
    return signing.dumps([scope, last_id], salt=_SALT, compress=False)


def decode_cursor(cursor: str | None, *, scope: str) -> int | None:
    """The id after which the next page starts; `scope` ties a cursor to one list (and filter)."""
    if not cursor:
        return None
    try:
        cursor_scope, last_id = signing.loads(cursor[:512], salt=_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidPageRequest("cursor", "cursor is not one this API issued.") from None
    if cursor_scope != scope or not isinstance(last_id, int):
        raise InvalidPageRequest("cursor", "cursor belongs to a different list or filter.")
    return last_id


def keyset_page(
    queryset: QuerySet, *, cursor: str | None, limit: int, scope: str, descending: bool = False
) -> tuple[list, str | None]:
    """One page of `queryset` ordered by id (ascending by default) and the next page's cursor."""
    after = decode_cursor(cursor, scope=scope)
    if after is not None:
        queryset = queryset.filter(id__lt=after) if descending else queryset.filter(id__gt=after)
    rows = list(queryset.order_by("-id" if descending else "id")[: limit + 1])
    next_cursor = encode_cursor(rows[limit - 1].id, scope=scope) if len(rows) > limit else None
    return rows[:limit], next_cursor
