"""Who may call what (DESIGN.md §10): every API endpoint, for anonymous callers, viewers and operators.

The endpoints come from the URL conf, so an endpoint added later is checked here too: it is
guarded by the global permission unless it opts out, and only /healthz and /readyz do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from drf_spectacular.generators import EndpointEnumerator
from rest_framework.authtoken.models import Token
from rest_framework.permissions import SAFE_METHODS, AllowAny
from rest_framework.test import APIClient

from jobs.roles import grant_role
from tests.conftest import api_client

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"/healthz", "/readyz"}
DOCS_PAGES = {"/api/docs/", "/api/redoc/"}  # pages for people: anonymous callers go to the login
SOME_ID = "6d0f3d2e-5b7a-4c1e-9a55-0c5e5e1f2a10"  # fixed: every xdist worker must collect the same ids
ENDPOINTS = [
    (method, path.replace("{pk}", SOME_ID), callback.cls)
    for path, _, method, callback in EndpointEnumerator().get_api_endpoints()
]
GUARDED = [(method, path) for method, path, view in ENDPOINTS if path not in PUBLIC]


def call(client: APIClient, method: str, path: str) -> Any:
    """One request; unsafe methods send an empty JSON object, valid JSON the view may reject."""
    if method in SAFE_METHODS:
        return getattr(client, method.lower())(path)
    return getattr(client, method.lower())(path, {}, format="json")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].split(";")[0] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"code", "message", "details"} and body["code"] == code
    return body


def test_only_the_probes_opt_out_of_authentication() -> None:
    public = {path for _, path, view in ENDPOINTS if AllowAny in view.permission_classes}
    assert public == PUBLIC
    assert {"/jobs/", "/queues/", "/api/schema/"} <= {path for _, path in GUARDED}


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), [e for e in GUARDED if e[1] not in DOCS_PAGES])
def test_anonymous_gets_401_not_authenticated(method, path) -> None:
    response = call(APIClient(), method, path)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
@pytest.mark.parametrize("path", sorted(DOCS_PAGES))
def test_anonymous_is_sent_from_a_docs_page_to_the_login(path) -> None:
    response = APIClient().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_a_viewer_reads_but_may_not_act(method, path) -> None:
    response = call(api_client("viewer"), method, path)
    if method in SAFE_METHODS:
        assert response.status_code not in (401, 403), response.content
    else:
        body = assert_error(response, 403, "permission_denied")
        assert body["message"] == "Your role does not allow this request."


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_an_operator_reads_and_acts(method, path) -> None:
    response = call(api_client("operator"), method, path)
    assert response.status_code not in (401, 403), response.content


@pytest.mark.django_db
@pytest.mark.parametrize("path", sorted(PUBLIC))
@pytest.mark.parametrize("credentials", [None, "Token not-a-real-token"])
def test_the_probes_answer_anyone_and_ignore_credentials(path, credentials) -> None:
    client = APIClient()
    if credentials:
        client.credentials(HTTP_AUTHORIZATION=credentials)
    assert client.get(path).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Token not-a-real-token", "Token", "Token a b", "Bearer abc"])
def test_bad_credentials_get_401_not_authenticated(header) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/jobs")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_an_admin_session_reads_and_acts_with_its_csrf_token() -> None:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin)
    assert client.get("/jobs").status_code == 200

    refused = client.post("/jobs", {"jobType": "tests.record"}, format="json")
    body = assert_error(refused, 403, "permission_denied")
    assert "CSRF" in body["message"]

    client.get("/admin/")  # sets the csrftoken cookie, as a browser would have it
    response = client.post(
        "/jobs",
        {"jobType": "tests.record"},
        format="json",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_a_staff_session_without_a_role_may_not_even_read() -> None:
    staff = get_user_model().objects.create_user("clerk", password="pw", is_staff=True)
    client = APIClient()
    client.force_login(staff)
    assert_error(client.get("/jobs"), 403, "permission_denied")


@pytest.mark.django_db
def test_a_user_without_a_role_may_not_read() -> None:
    client = api_client("viewer")
    get_user_model().objects.filter(groups__name="taskforge viewers").get().groups.clear()
    assert_error(client.get("/jobs"), 403, "permission_denied")


def _token_client(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.mark.django_db
def test_a_token_is_authenticated_and_authorised_by_one_prepared_statement() -> None:
    client = api_client("operator")
    with CaptureQueriesContext(connection) as queries:  # the ORM's queries; sql.fetch's are not
        assert client.get("/queues").status_code == 200
    # No ORM lookup of the token, the user or their permissions (has_perm) is left.
    assert not [q["sql"] for q in queries if "auth" in q["sql"]]


@pytest.mark.django_db
def test_token_grants_follow_has_perm_for_each_way_of_holding_a_permission() -> None:
    users = get_user_model().objects
    direct = users.create_user("direct")
    direct.user_permissions.add(Permission.objects.get(codename="view_job", content_type__app_label="jobs"))
    root = users.create_user("root", is_superuser=True)
    inactive = users.create_user("gone", is_active=False)
    grant_role(inactive, "operator")

    assert _token_client(direct).get("/jobs").status_code == 200  # read through a user permission
    assert_error(_token_client(direct).post("/jobs", {}, format="json"), 403, "permission_denied")
    assert _token_client(root).post("/jobs", {"jobType": "tests.record"}, format="json").status_code == 201
    assert_error(_token_client(inactive).get("/jobs"), 401, "not_authenticated")


@pytest.mark.django_db
def test_a_role_taken_away_applies_to_the_very_next_call() -> None:
    operator = get_user_model().objects.create_user("op")
    grant_role(operator, "operator")
    client = _token_client(operator)
    assert client.post("/jobs", {"jobType": "tests.record"}, format="json").status_code == 201
    grant_role(operator, "viewer")
    assert_error(client.post("/jobs", {"jobType": "tests.record"}, format="json"), 403, "permission_denied")
    assert client.get("/jobs").status_code == 200


@pytest.mark.django_db
def test_with_api_auth_off_anyone_reads_and_acts() -> None:
    with override_settings(TASKFORGE=dataclasses.replace(settings.TASKFORGE, api_auth=False)):
        client = APIClient()
        assert client.get("/jobs").status_code == 200
        assert client.post("/jobs", {"jobType": "tests.record"}, format="json").status_code == 201


@pytest.mark.parametrize(("value", "warned"), [("off", True), ("on", False)])
def test_the_api_server_warns_at_start_when_auth_is_off(value, warned) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import taskforge_site.wsgi"],
        cwd=ROOT,
        env={**os.environ, "TASKFORGE_API_AUTH": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert ("TASKFORGE_API_AUTH=off" in proc.stderr) is warned
