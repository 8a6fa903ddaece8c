from django.db import models


class Counter(models.Model):
    """A shared counter for the embedded (no-Redis) backend: daily budgets and per-minute rate
    limits. Incremented only by one conditional upsert (`core.counters`); `prune` removes
    rows past `expires_at`."""

    key = models.CharField(max_length=100, unique=True)
    count = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        db_table = "apikeys_counter"  # created by apikeys' migrations, before it moved here

    def __str__(self) -> str:
        return f"{self.key}={self.count}"
