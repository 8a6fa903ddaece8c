# The shared counters moved to `core` and idempotency records to `gateway` (SPEC §1 layers). The
# tables stay as they are (each model keeps its `db_table`): only Django's state moves.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('apikeys', '0002_metering'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='Counter'),
                migrations.DeleteModel(name='IdempotencyRecord'),
            ],
        ),
    ]
