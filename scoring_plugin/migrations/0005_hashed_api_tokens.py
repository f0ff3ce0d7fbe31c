"""API tokens stored hashed: each plain-text DRF token becomes an ApiToken holding its SHA-256
(clients keep using the same key), and the plain-text rows are deleted."""

import hashlib

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def hash_plain_tokens(apps, schema_editor):  # type: ignore[no-untyped-def]
    Token = apps.get_model("authtoken", "Token")
    ApiToken = apps.get_model("scoring_plugin", "ApiToken")
    for token in Token.objects.all():
        ApiToken.objects.get_or_create(
            key_hash=hashlib.sha256(token.key.encode()).hexdigest(),
            defaults={
                "user_id": token.user_id,
                "name": "migrated",
                "prefix": token.key[:8],
                "created_at": token.created,
            },
        )
    Token.objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('scoring_plugin', '0004_stable_items_waiting_answers'),
        ('authtoken', '0004_alter_tokenproxy_options'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApiToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(blank=True, help_text='What uses this token.', max_length=100)),
                ('key_hash', models.CharField(editable=False, max_length=64, unique=True)),
                ('prefix', models.CharField(editable=False, help_text="The token's first characters.", max_length=8)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now, editable=False)),
                ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_tokens', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'API token',
                'ordering': ['-created_at'],
            },
        ),
        migrations.RunPython(hash_plain_tokens, migrations.RunPython.noop),
    ]
