# `IdempotencyRecord` moved here from `apikeys` (its table, `apikeys_idempotencyrecord`, stays):
# state only.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('apikeys', '0003_counters_and_idempotency_move'),
        ('workspaces', '0004_security_alerts'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='IdempotencyRecord',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('key', models.CharField(max_length=255)),
                        ('fingerprint', models.CharField(max_length=64)),
                        ('status', models.CharField(choices=[('in_flight', 'In flight'), ('completed', 'Completed')], max_length=16)),
                        ('locked_until', models.DateTimeField()),
                        ('response_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                        ('response_headers', models.JSONField(blank=True, default=dict)),
                        ('response_body', models.BinaryField(blank=True, default=b'')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('expires_at', models.DateTimeField(db_index=True)),
                        ('workspace', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='workspaces.workspace')),
                    ],
                    options={
                        'db_table': 'apikeys_idempotencyrecord',
                        'constraints': [models.UniqueConstraint(fields=('workspace', 'key'), name='idempotency_unique_key')],
                    },
                ),
            ],
        ),
    ]
