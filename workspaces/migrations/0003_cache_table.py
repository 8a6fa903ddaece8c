from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # Without REDIS_URL the shared cache (rate limits, revocation signals) is Django's
    # DatabaseCache; creating its table here makes `migrate` the only setup step. Idempotent.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("workspaces", "0002_seed_plans")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
