"""Key the audit chain with an HMAC under GATEHOUSE_AUDIT_KEY, and seal every chain head.

Events already written keep their unkeyed SHA-256 hashes (`key_id` stays ""): re-hashing them
would launder whatever was done to them before. Instead each existing chain records the newest of
them in `legacy_through`, and its head row is sealed with the key now, so from here on:

- an unkeyed event after `legacy_through` is a forgery (verify_audit_log says so);
- the unkeyed prefix cannot be rewritten either: it ends at the sealed head hash (or at the first
  keyed event's `prev_hash`), which no database writer can move.

verify_audit_log reports how many of a chain's events are unkeyed. Reversing drops the columns.
"""

from django.db import migrations, models
from django.db.models import Count, Max

from audit.keys import signing_key
from audit.services import chain_seal


# SQLite adds these columns by rebuilding audit_auditevent, which drops its trigger: put it back.
SQLITE_APPEND_ONLY = """
    CREATE TRIGGER IF NOT EXISTS audit_event_no_update BEFORE UPDATE ON audit_auditevent
    BEGIN
        SELECT RAISE(ABORT, 'audit events are append-only: UPDATE on audit_auditevent refused');
    END
"""


def restore_sqlite_trigger(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "sqlite":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(SQLITE_APPEND_ONLY)


def seal_existing_chains(apps, schema_editor) -> None:
    AuditChain = apps.get_model("audit", "AuditChain")
    AuditEvent = apps.get_model("audit", "AuditEvent")
    key = signing_key()
    for chain in AuditChain.objects.all():
        if chain.key == "global":
            events = AuditEvent.objects.filter(workspace__isnull=True)
        else:
            events = AuditEvent.objects.filter(workspace_id=int(chain.key.removeprefix("ws:")))
        found = events.aggregate(last=Max("id"), count=Count("id"))
        chain.legacy_through = found["last"]
        chain.head_seq = found["count"]
        chain.seal_key_id = key.id
        chain.seal = chain_seal(chain, key)
        chain.save(update_fields=["legacy_through", "head_seq", "seal_key_id", "seal"])


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_chain_head_created_at")]

    operations = [
        migrations.AddField(
            model_name="auditchain",
            name="head_seq",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="auditchain",
            name="legacy_through",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="auditchain",
            name="seal",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="auditchain",
            name="seal_key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.AddField(
            model_name="auditevent",
            name="seq",
            field=models.PositiveBigIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(restore_sqlite_trigger, restore_sqlite_trigger),
        migrations.RunPython(seal_existing_chains, migrations.RunPython.noop),
    ]
