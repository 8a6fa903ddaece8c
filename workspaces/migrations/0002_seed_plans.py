from django.db import migrations

# SPEC §2. None = unlimited. Ops edit these rows in Django admin afterwards.
PLANS = [
    # code, name, writes/day, passport reads/day, active keys, passports, overage, price, retention
    ("free", "Free", 100, 100, 5, 25, False, None, 30),
    ("basic", "Basic", 200, 200, 10, 100, True, 10, 90),
    ("starter", "Starter", None, None, 50, None, False, None, 365),
    ("growth", "Growth", None, None, 50, None, False, None, 365),
    ("scale", "Scale", None, None, 50, None, False, None, 365),
    ("pro", "Pro", None, None, 50, None, False, None, 365),
    ("enterprise", "Enterprise", None, None, 50, None, False, None, 365),
]


def seed_plans(apps, schema_editor):
    Plan = apps.get_model("workspaces", "Plan")
    for code, name, writes, reads, keys, passports, overage, price, retention in PLANS:
        Plan.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "writes_per_day": writes,
                "passport_reads_per_day": reads,
                "active_keys_limit": keys,
                "passports_limit": passports,
                "overage_allowed": overage,
                "overage_price_cents": price,
                "audit_retention_days": retention,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("workspaces", "0001_initial")]

    operations = [migrations.RunPython(seed_plans, migrations.RunPython.noop)]
