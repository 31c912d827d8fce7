"""API roles as Django groups (DESIGN.md §10): viewers read, operators also submit and act.

The API checks one permission per request (``READ_PERMISSION`` for GET/HEAD/OPTIONS,
``ACT_PERMISSION`` otherwise, see taskforge_site/permissions.py); the other permissions of a
role are for the admin's views of the same data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import apps as installed_apps
from django.db import transaction

if TYPE_CHECKING:
    from django.apps.registry import Apps

READ_PERMISSION = "jobs.view_job"
ACT_PERMISSION = "jobs.change_job"

_VIEW = (
    "jobs.view_job",
    "jobs.view_jobevent",
    "jobs.view_queuesettings",
    "jobs.view_auditentry",
    "dlq.view_deadletter",
)
_ACT = (
    "jobs.add_job",
    "jobs.change_job",
    "jobs.change_queuesettings",
    "dlq.change_deadletter",
    "dlq.delete_deadletter",
)

# role name (as `createapitoken --role` takes it) -> (group name, "app_label.codename" permissions)
ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "viewer": ("taskforge viewers", _VIEW),
    "operator": ("taskforge operators", _VIEW + _ACT),
}


def _permission(apps: Apps, dotted: str) -> Any:
    """The Permission row, created if missing: in a fresh database the data migration runs
    before post_migrate creates any permission."""
    content_type_model = apps.get_model("contenttypes", "ContentType")
    permission_model = apps.get_model("auth", "Permission")
    app_label, codename = dotted.split(".")
    action, model_name = codename.split("_", 1)
    try:
        verbose_name = apps.get_model(app_label, model_name)._meta.verbose_name
    except LookupError:  # an earlier data migration: the migration adding the model grants it
        return None
    content_type, _ = content_type_model.objects.get_or_create(app_label=app_label, model=model_name)
    permission, _ = permission_model.objects.get_or_create(
        content_type=content_type, codename=codename, defaults={"name": f"Can {action} {verbose_name}"}
    )
    return permission


def sync_role_groups(apps: Apps = installed_apps) -> dict[str, Any]:
    """Creates the role groups and grants their permissions; never removes anything an admin
    added. Safe to repeat (data migration, `createapitoken`, tests after a table flush)."""
    group_model = apps.get_model("auth", "Group")
    groups = {}
    with transaction.atomic():
        for role, (group_name, permissions) in ROLES.items():
            group, _ = group_model.objects.get_or_create(name=group_name)
            granted = (_permission(apps, p) for p in permissions)
            group.permissions.add(*(p for p in granted if p is not None))
            groups[role] = group
    return groups


def grant_role(user: Any, role: str) -> None:
    """Makes `role` the user's only TaskForge role (its other groups stay)."""
    groups = sync_role_groups()
    user.groups.remove(*(group for name, group in groups.items() if name != role))
    user.groups.add(groups[role])
