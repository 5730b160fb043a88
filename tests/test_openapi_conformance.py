"""schemathesis against /openapi.json and the app itself (WSGI): as a user and
as an admin, every operation answers without a 5xx and as its schema says.
Bounded (examples per operation) and derandomized: every run tries the same
requests.

The operations are walked here rather than through schemathesis's pytest
plugin, whose ``from_fixture`` does not run under the pinned pytest."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

BOUNDED = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
# No 5xx, nothing undocumented, every answer as its schema says, and an
# operation that wants a token refuses a request without one. (Not
# "positive_data_acceptance": the schema's "format: email" is looser than the
# address check, and a 422 there is documented.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


def _exercise(app, headers: dict) -> list[str]:
    """Every operation, each with BOUNDED examples; what broke, per operation."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    failures, tried = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        tried += 1

        @BOUNDED
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except (AssertionError, BaseExceptionGroup) as error:  # name every broken operation
            failures.append(f"{operation.label}: {error}")
    assert tried >= 15  # every documented operation was tried: this test can fail
    return failures


def test_every_operation_as_a_user(app, user, stub_broker):
    assert _exercise(app, user[1]) == []


def test_every_operation_as_an_admin(app, admin, stub_broker):
    assert _exercise(app, admin[1]) == []
