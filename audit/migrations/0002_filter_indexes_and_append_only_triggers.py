"""Indexes for the actor-label and date-range filters, and triggers that refuse UPDATE/DELETE.

PostgreSQL: one trigger refuses UPDATE and DELETE on audit_auditevent, except a DELETE inside a
transaction that ran `SELECT set_config('gatehouse.audit_prune', 'on', true)` — the retention
path (`manage.py prune`). TRUNCATE is not a row event and is not refused (Django's test flush
uses it); verify_audit_log still catches a truncated table through the chain head.

SQLite: a trigger refuses UPDATE. DELETE is left to the ORM guard and the hash chain, because
Django's flush (used between transactional tests and by `manage.py flush`) empties SQLite tables
with row-by-row `DELETE FROM` in no fixed order, which no row trigger can tell from tampering.
"""

from django.db import migrations, models

PG_FORWARD = [
    """
    CREATE OR REPLACE FUNCTION audit_event_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' AND current_setting('gatehouse.audit_prune', true) = 'on' THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION USING
            MESSAGE = 'audit events are append-only: ' || TG_OP || ' on audit_auditevent refused',
            ERRCODE = 'insufficient_privilege',
            HINT = 'Old events are removed only by manage.py prune.';
    END;
    $$
    """,
    """
    CREATE TRIGGER audit_event_append_only
        BEFORE UPDATE OR DELETE ON audit_auditevent
        FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change()
    """,
]
PG_REVERSE = [
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent",
    "DROP FUNCTION IF EXISTS audit_event_refuse_change()",
]
SQLITE_FORWARD = [
    """
    CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_auditevent
    BEGIN
        SELECT RAISE(ABORT, 'audit events are append-only: UPDATE on audit_auditevent refused');
    END
    """,
]
SQLITE_REVERSE = ["DROP TRIGGER IF EXISTS audit_event_no_update"]


def _run(sql_by_vendor: dict[str, list[str]]):
    def run(apps, schema_editor) -> None:
        with schema_editor.connection.cursor() as cursor:
            for statement in sql_by_vendor.get(schema_editor.connection.vendor, []):
                cursor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                fields=["workspace", "actor_label", "-id"], name="audit_ws_actor_label_id"
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["workspace", "created_at"], name="audit_ws_created"),
        ),
        migrations.RunPython(
            _run({"postgresql": PG_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": PG_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]
