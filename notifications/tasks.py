"""The background tasks (Django's tasks framework, `django_tasks_db` backend, SPEC §13).

Each task names one delivery by primary key; the delivery row, not the task, is the truth (see
`notifications.delivery`): running a task twice, or for a delivery already sent, sends nothing
twice, and a delivery whose task was lost with a killed worker is queued again by the sweep.
"""

from __future__ import annotations

from django.tasks import task

from . import delivery


@task()
def send_email(delivery_id: int) -> str:
    return delivery.email_deliver(delivery_id)


@task()
def deliver_webhook(delivery_id: int) -> str:
    return delivery.webhook_deliver(delivery_id)
