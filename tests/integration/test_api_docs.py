"""The OpenAPI schema (/api/schema/) and the docs pages (/api/docs/, /api/redoc/)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tests.conftest import api_client

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def schema_of(client: APIClient) -> dict[str, Any]:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200, response.content
    return json.loads(response.content)


@pytest.fixture
def schema(api) -> dict[str, Any]:
    return schema_of(api)


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op) for path, item in schema["paths"].items() for method, op in item.items()
    ]


def test_manage_py_spectacular_validates_with_no_warnings(tmp_path: Path) -> None:
    """What CI runs (.ci/run): a warning means an endpoint or field the schema cannot describe."""
    proc = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            tmp_path / "s.yaml",
        ],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    assert (tmp_path / "s.yaml").read_text().startswith("openapi: 3.0")


def test_anonymous_gets_no_schema() -> None:
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["code"] == "not_authenticated"


def test_a_viewer_reads_the_schema_as_yaml_or_json() -> None:
    viewer = api_client("viewer")
    assert viewer.get("/api/schema/").content.startswith(b"openapi: 3.0")
    assert schema_of(viewer)["info"]["title"] == "TaskForge API"


def test_every_error_response_has_the_error_shape(schema) -> None:
    assert schema["components"]["schemas"]["Error"]["required"] == ["code", "details", "message"]
    for method, path, op in operations(schema):
        errors = {status: r for status, r in op["responses"].items() if int(status) >= 400}
        assert "500" in errors, (method, path)
        for response in errors.values():
            assert response["content"]["application/json"]["schema"] == ERROR_REF, (method, path)
            assert response["description"]


def test_guarded_operations_document_401_and_403_and_the_probes_do_not(schema) -> None:
    for method, path, op in operations(schema):
        guarded = path not in ("/healthz", "/readyz")
        assert ({"401", "403"} <= set(op["responses"])) is guarded, (method, path)
        assert ({} in op["security"]) is not guarded, (method, path)


def test_every_path_is_written_without_a_trailing_slash(schema) -> None:
    assert all(not path.endswith("/") for path in schema["paths"])
    assert {"/jobs", "/jobs/{id}", "/jobs/{id}/events", "/jobs/batch", "/queues", "/healthz"} <= set(
        schema["paths"]
    )


def test_post_jobs_has_examples_and_a_closed_body(schema) -> None:
    post = schema["paths"]["/jobs"]["post"]
    body = post["requestBody"]["content"]["application/json"]
    assert {"Minimal", "EveryOption"} <= set(body["examples"])
    assert set(post["responses"]) >= {"200", "201", "400", "413", "415", "422"}
    create = schema["components"]["schemas"]["JobCreate"]
    assert create["additionalProperties"] is False and create["required"] == ["jobType"]
    for example in body["examples"].values():
        assert set(example["value"]) <= set(create["properties"])


def test_fields_carry_types_and_durations_their_unit(schema) -> None:
    components = schema["components"]["schemas"]
    for name in ("Job", "JobCreate"):
        properties = components[name]["properties"]
        for field in ("initialDelay", "maxDelay", "timeout"):
            assert properties[field]["type"] == "integer"
            assert "millisecond" in properties[field]["description"].lower(), (name, field)
        assert "millisecond" in components["JobCreate"]["properties"]["delay"]["description"].lower()
    job = components["Job"]["properties"]
    assert job["state"]["allOf"] == [{"$ref": "#/components/schemas/JobStateEnum"}]
    assert components["JobStateEnum"]["enum"] == [
        "PENDING", "QUEUED", "RUNNING", "RETRYING", "SUCCEEDED", "DLQ", "CANCELED",
    ]  # fmt: skip
    untyped = {"payload", "result"}  # any JSON, on purpose
    assert all("type" in spec for name, spec in job.items() if name not in untyped | {"state"})


def test_lists_are_envelopes(schema) -> None:
    page = schema["paths"]["/jobs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert page == {"$ref": "#/components/schemas/JobPage"}
    envelope = schema["components"]["schemas"]["JobPage"]
    assert set(envelope["required"]) == {"items", "total", "limit", "offset"}
    assert envelope["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Job"}


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_load_only_our_own_static_files(path) -> None:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = APIClient()
    client.force_login(admin)
    response = client.get(path)
    assert response.status_code == 200
    html = response.content.decode()

    assert not re.search(r"https?:|//[a-z]", html, re.IGNORECASE), "the page names an external URL"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(url.startswith("/static/drf_spectacular_sidecar/") for url in assets), assets
    for url in assets:
        asset = client.get(url)
        assert asset.status_code == 200, url
        asset.close()
    assert "/api/schema/" in html


def test_a_token_holder_can_open_the_docs_too() -> None:
    assert api_client("viewer").get("/api/docs/").status_code == 200
