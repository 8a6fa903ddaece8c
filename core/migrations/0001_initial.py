# `Counter` moved here from `apikeys` (its table, `apikeys_counter`, stays): state only.

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('apikeys', '0003_counters_and_idempotency_move'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Counter',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('key', models.CharField(max_length=100, unique=True)),
                        ('count', models.BigIntegerField(default=0)),
                        ('expires_at', models.DateTimeField(db_index=True)),
                    ],
                    options={'db_table': 'apikeys_counter'},
                ),
            ],
        ),
    ]
