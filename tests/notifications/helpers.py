"""Running the task queue in the test process, as `manage.py db_worker --batch` would."""

from __future__ import annotations

from django_tasks_db.models import DBTaskResult


def run_tasks(*, limit: int = 1000) -> list[str]:
    """Run every task that is ready now (and those they queue that are ready), in order; the
    return values (e.g. "sent", "retry", "not claimed")."""
    results = []
    for _ in range(limit):
        row = DBTaskResult.objects.ready().order_by("enqueued_at").first()
        if row is None:
            return results
        row.claim("test")
        value = row.task.call(*row.task_result.args, **row.task_result.kwargs)
        row.set_successful(value)
        results.append(value)
    raise AssertionError("the queue did not drain")


def queued() -> int:
    return DBTaskResult.objects.ready().count()
