from datetime import UTC, date, datetime, timedelta

# Taken once, at import: inside a frozen clock "today" is the frozen day.
_BASE: date = datetime.now(UTC).date() + timedelta(days=2)


def day_ahead(days: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A UTC moment on the day `days` after a day safely after the real today, for frozen
    clocks: Redis expires counters on its own clock (`EXPIREAT`), so a frozen clock in the past
    sees them vanish at once, and a fixed date in a test is in the past sooner or later."""
    day = _BASE + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)
