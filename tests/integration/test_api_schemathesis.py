"""Schemathesis fuzzes every documented operation, as an operator, through the in-process WSGI
app (real Postgres and Redis, committed transactions as in production).

Every generated request must get a response that is not a 5xx, whose status the schema
documents, and whose body matches it. A failure here is a bug in the API or in its schema:
fix it, never exclude the operation.

The schema is built when this module loads, by the generator GET /api/schema/ serves from
(`test_the_served_schema_is_the_fuzzed_one` holds them equal): that endpoint needs a token,
and tokens live in the test database, which is not there yet at collection. (Loading it from a
fixture with `schemathesis.pytest.from_fixture` instead fails on pytest 9.2, whose test items
no longer have the `_nodeid` attribute that schemathesis 4.32 sets.)
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings

from tests.conftest import api_token

# Examples per operation in the fuzzing phase (a few hundred in all); schemathesis' examples and
# coverage phases add their own cases (boundaries, missing and wrong-typed values).
MAX_EXAMPLES = 15
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.response_schema_conformance,
]

SCHEMA = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
schema = schemathesis.openapi.from_dict(SCHEMA)
schema.app = get_wsgi_application()


@pytest.fixture
def operator_token(transactional_db: None) -> str:
    """Committed, as the app commits each request: the in-process WSGI handler closes a connection
    left inside the test's transaction (`db`) after every request."""
    return api_token("operator")


def test_the_served_schema_is_the_fuzzed_one(api) -> None:
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    assert json.loads(response.content) == SCHEMA


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout
    derandomize=True,  # CI runs the same cases every time
    # One database and one token serve every generated case of an operation, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_operation_conforms_to_the_schema(case: schemathesis.Case, operator_token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Token {operator_token}"}, checks=CHECKS)
