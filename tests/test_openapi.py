"""/openapi.json matches the app's routes, and /metrics speaks Prometheus."""

from __future__ import annotations

import json
import re

import pytest

from app.models import EXPORT_FORMATS, EXPORT_KINDS, EXPORT_STATUSES, JOB_STATUSES

PUBLIC_PREFIXES = (
    "/api/",
    "/exports/download/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
)


def _routes(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PUBLIC_PREFIXES):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            if path == "/exports/download/{token}":
                path = "/exports/download/{signed_token}"
            routes.setdefault(path, set()).update(
                m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}
            )
    return routes


def test_openapi_document_lists_exactly_the_api_routes_and_methods(app, client):
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    documented = {path: set(item) for path, item in document["paths"].items()}
    assert documented == _routes(app)


def test_every_schema_reference_resolves(client):
    document = client.get("/openapi.json").json
    references = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(document)))
    assert references  # the pattern found them: this test can fail
    assert references <= set(document["components"]["schemas"])


def test_job_schema_names_every_field_the_api_returns(app, client, user, stub_broker):
    _, headers = user
    job_id = client.post(
        "/api/emails", json={"to": "a@example.com", "subject": "s", "body": "b"}, headers=headers
    ).json["job_id"]
    job = client.get(f"/api/jobs/{job_id}", headers=headers).json
    schema = client.get("/openapi.json").json["components"]["schemas"]["Job"]
    assert set(job) == set(schema["properties"])


def test_metrics_count_jobs_by_status(client, user, stub_broker):
    _, headers = user
    client.post(
        "/api/emails", json={"to": "a@example.com", "subject": "s", "body": "b"}, headers=headers
    )
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert 'jobs{actor="send_email",status="queued"} 1.0' in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/api/emails", "/api/exports"])
def test_openapi_documents_the_quota_answers_with_retry_after(client, path):
    responses = client.get("/openapi.json").json["paths"][path]["post"]["responses"]

    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["429"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "413" in responses
    if path == "/api/emails":
        assert "EMAIL_MAX_BODY_BYTES" in responses["413"]["description"]
        assert "USER_EMAILS_PER_HOUR" in responses["429"]["description"]
    else:
        assert "USER_EXPORTS_PER_DAY" in responses["429"]["description"]
        assert "USER_EXPORT_BYTES" in responses["429"]["description"]


def test_documented_states_kinds_and_formats_are_the_databases(client):
    # The API's enums and literals against the tuples the CHECK constraints use.
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    export_request = schemas["ExportRequest"]["properties"]

    def values(schema: dict) -> tuple:
        return tuple(schema["enum"]) if "enum" in schema else (schema["const"],)

    assert values(schemas["JobStatus"]) == JOB_STATUSES
    assert values(schemas["ExportStatus"]) == EXPORT_STATUSES
    assert values(export_request["kind"]) == EXPORT_KINDS
    assert values(export_request["format"]) == EXPORT_FORMATS
    assert "description" not in schemas["EmailStatus"]
