# Written by hand, like 0002 (the autodetector cannot resolve DOT's swappable settings). Every
# access token already stored is recorded as issued, so the gateway's filter knows it after this.

from django.db import migrations, models
from oauth2_provider.settings import oauth2_settings


def record_stored_tokens(apps, schema_editor):
    app_label, model_name = oauth2_settings.ACCESS_TOKEN_MODEL.split(".")
    AccessToken = apps.get_model(app_label, model_name)
    IssuedAccessToken = apps.get_model("oauth", "IssuedAccessToken")
    rows = AccessToken.objects.values_list("token_checksum", "expires").iterator(chunk_size=5000)
    IssuedAccessToken.objects.bulk_create(
        (IssuedAccessToken(token_checksum=checksum, expires_at=expires) for checksum, expires in rows),
        batch_size=5000,
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('oauth', '0002_used_authorization_code'),
        ('oauth2_provider', '0022_refreshtoken_token_family_index'),
    ]

    operations = [
        migrations.CreateModel(
            name='IssuedAccessToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token_checksum', models.CharField(help_text='SHA-256 of the token.', max_length=64, unique=True)),
                ('expires_at', models.DateTimeField(db_index=True)),
            ],
        ),
        migrations.RunPython(record_stored_tokens, migrations.RunPython.noop),
    ]
