"""The audit trail of operator actions; the role groups gain its view and the DLQ delete permission."""

import django.db.models.functions.datetime
from django.db import migrations, models

from jobs.roles import sync_role_groups


def grant_roles(apps, schema_editor):
    sync_role_groups(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0005_queue_limits"),
        ("jobs", "0004_api_role_groups"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ("actor", models.CharField(blank=True, max_length=150, null=True)),
                ("action", models.CharField(max_length=32)),
                ("target_type", models.CharField(max_length=16)),
                ("target_id", models.CharField(max_length=100)),
                ("reason", models.TextField(blank=True, null=True)),
                ("details", models.JSONField(default=dict)),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "db_table": "audit_entries",
                "indexes": [
                    models.Index(fields=["target_type", "target_id", "id"], name="audit_entries_target_idx"),
                    models.Index(fields=["at"], name="audit_entries_at_idx"),
                ],
            },
        ),
        migrations.RunPython(grant_roles, migrations.RunPython.noop),
    ]
