# Written by hand (the autodetector cannot resolve DOT's swappable settings): the per-credential
# budget of SPEC §3 (workspaces.caps.CredentialBudget).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('apikeys', '0006_net_key_networks'),
    ]

    operations = [
        migrations.AddField(
            model_name='apikey',
            name='credits',
            field=models.PositiveBigIntegerField(blank=True, help_text='Credit balance (one per request); empty: no credits.', null=True),
        ),
        migrations.AddField(
            model_name='apikey',
            name='credits_epoch',
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name='apikey',
            name='credits_refill',
            field=models.CharField(blank=True, choices=[('', 'No refill'), ('daily', 'Daily, at 00:00 UTC'), ('monthly', 'Monthly, on the 1st at 00:00 UTC')], default='', max_length=8),
        ),
        migrations.AddField(
            model_name='apikey',
            name='daily_cap',
            field=models.PositiveIntegerField(blank=True, help_text='Requests per UTC day; empty: no cap of its own.', null=True),
        ),
        migrations.AddConstraint(
            model_name='apikey',
            constraint=models.CheckConstraint(condition=models.Q(('daily_cap__isnull', True), ('daily_cap__gt', 0), _connector='OR'), name='apikeys_apikey_daily_cap_positive'),
        ),
        migrations.AddConstraint(
            model_name='apikey',
            constraint=models.CheckConstraint(condition=models.Q(('credits__isnull', False), ('credits_refill', ''), _connector='OR'), name='apikeys_apikey_refill_needs_credits'),
        ),
    ]
