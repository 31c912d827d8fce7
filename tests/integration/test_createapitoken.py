"""`manage.py createapitoken USERNAME --role viewer|operator`, and the role groups it relies on."""

from __future__ import annotations

import importlib
import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.roles import ROLES

pytestmark = pytest.mark.django_db


def create_token(username: str, role: str) -> str:
    out = io.StringIO()
    call_command("createapitoken", username, "--role", role, stdout=out)
    return out.getvalue()


def client_with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def role_groups(username: str) -> set[str]:
    return set(get_user_model().objects.get(username=username).groups.values_list("name", flat=True))


def test_creates_the_user_and_prints_only_its_token() -> None:
    out = create_token("ci-bot", "operator")

    user = get_user_model().objects.get(username="ci-bot")
    assert out == f"{Token.objects.get(user=user).key}\n"
    assert role_groups("ci-bot") == {"taskforge operators"}
    assert not user.has_usable_password() and not user.is_staff


def test_the_token_works_with_the_role_it_was_made_for() -> None:
    viewer = client_with(create_token("dashboard", "viewer").strip())
    assert viewer.get("/jobs").status_code == 200
    assert viewer.post("/jobs", {"jobType": "tests.record"}, format="json").status_code == 403

    operator = client_with(create_token("deployer", "operator").strip())
    assert operator.post("/jobs", {"jobType": "tests.record"}, format="json").status_code == 201


def test_running_it_again_keeps_the_token_and_switches_the_role() -> None:
    first = create_token("alice", "viewer")
    assert create_token("alice", "operator") == first
    assert role_groups("alice") == {"taskforge operators"}
    assert create_token("alice", "viewer") == first
    assert role_groups("alice") == {"taskforge viewers"}


def test_an_existing_user_keeps_its_password_and_other_groups() -> None:
    user = get_user_model().objects.create_user("bob", password="s3cret-pass")
    user.groups.add(Group.objects.create(name="billing"))
    create_token("bob", "viewer")
    user.refresh_from_db()
    assert user.check_password("s3cret-pass")
    assert role_groups("bob") == {"billing", "taskforge viewers"}


def test_it_recreates_missing_role_groups() -> None:
    Group.objects.filter(name__in=[name for name, _ in ROLES.values()]).delete()
    token = create_token("carol", "viewer").strip()
    assert client_with(token).get("/jobs").status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dave", "--role", "admin"], "invalid choice: 'admin'"),
        (["dave"], "the following arguments are required: --role"),
        (["not a name!", "--role", "viewer"], "invalid username 'not a name!'"),
        (["", "--role", "viewer"], "invalid username ''"),
    ],
)
def test_refuses_bad_arguments(args, message) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("createapitoken", *args)
    assert not get_user_model().objects.filter(username__startswith="dave").exists()


def test_the_data_migration_grants_each_role_its_permissions() -> None:
    """Runs the migrations' functions on the historical models each sees in a fresh database:
    0004 grants what exists then, 0006 the audit trail's permission it adds."""
    Group.objects.filter(name__in=[name for name, _ in ROLES.values()]).delete()
    loader = MigrationExecutor(connection).loader
    for name, function in (("0004_api_role_groups", "create_groups"), ("0006_audit_entries", "grant_roles")):
        migration = importlib.import_module(f"jobs.migrations.{name}")
        getattr(migration, function)(loader.project_state(("jobs", name)).apps, None)

    for group_name, permissions in ROLES.values():
        granted = Group.objects.get(name=group_name).permissions.values_list(
            "content_type__app_label", "codename"
        )
        assert {f"{app}.{codename}" for app, codename in granted} == set(permissions)
    viewer = set(ROLES["viewer"][1])
    assert viewer < set(ROLES["operator"][1])
    assert all(p.split(".")[1].startswith("view_") for p in viewer)
