"""The API's role groups, "taskforge viewers" and "taskforge operators" (jobs/roles.py)."""

from django.db import migrations

from jobs.roles import ROLES, sync_role_groups


def create_groups(apps, schema_editor):
    sync_role_groups(apps)


def delete_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[name for name, _ in ROLES.values()]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0003_queue_settings_and_active_index"),
        ("dlq", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
