# Written by hand: the autodetector cannot resolve DOT's unswapped models' swappable settings
# (see 0001). Tokens' audience needs no migration: it is DOT's own `resource` field
# (oauth2_provider 0018), and empty values from before mean the API (oauth/resources.py).

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('oauth', '0001_initial'),
        ('oauth2_provider', '0022_refreshtoken_token_family_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='UsedAuthorizationCode',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('code_digest', models.CharField(help_text='SHA-256 of the code.', max_length=64, unique=True)),
                ('refresh_token_family', models.UUIDField(blank=True, null=True)),
                ('used_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ('replayed_at', models.DateTimeField(blank=True, null=True)),
                ('access_token', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='oauth2_provider.accesstoken')),
                ('application', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='oauth2_provider.application')),
                ('connection', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='used_codes', to='oauth.connection')),
            ],
        ),
    ]
