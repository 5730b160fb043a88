"""The OpenAPI 3 document of the JSON API, served at /openapi.json.

Kept by hand, and kept accurate by tests/test_openapi.py, which checks it
against the app's routes."""

from __future__ import annotations


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {
        400: "malformed JSON or wrong content type",
        401: "missing or bad token",
        403: "not an admin",
        404: "not found, or not yours",
        409: "conflicts with the current state",
        410: "expired or cleaned up",
        413: "body over 1 MiB",
        422: "invalid fields",
        429: "too many failed sign-ins",
        503: "the database or another service is unreachable",
    }
    return {str(code): _json(_ref("Error"), text[code]) for code in codes}


def _body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


STR, INT = {"type": "string"}, {"type": "integer"}
TIME = {"type": "string", "format": "date-time", "nullable": True}
ERROR_SUMMARY = {
    "type": "object",
    "nullable": True,
    "properties": {"type": STR, "message": STR},
}
USER_ERRORS = (400, 401, 413, 422, 503)

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": STR,
            "fields": {"type": "object", "additionalProperties": STR},
            "job_id": STR,
        },
    },
    "Attempt": {
        "type": "object",
        "properties": {
            "attempt": INT,
            "started_at": TIME,
            "finished_at": TIME,
            "outcome": {
                "type": "string",
                "enum": ["running", "succeeded", "failed", "interrupted"],
            },
            "error": ERROR_SUMMARY,
            "traceback": {"type": "string", "nullable": True, "description": "admins only"},
        },
    },
    "Job": {
        "type": "object",
        "properties": {
            "id": STR,
            "actor": STR,
            "queue": STR,
            "status": {
                "type": "string",
                "enum": ["queued", "running", "retrying", "succeeded", "failed", "cancelled"],
            },
            "progress": INT,
            "attempts": INT,
            "max_retries": INT,
            "created_at": TIME,
            "started_at": TIME,
            "finished_at": TIME,
            "next_retry_at": TIME,
            "error": ERROR_SUMMARY,
            "result": {"nullable": True},
            "history": {"type": "array", "items": _ref("Attempt")},
        },
    },
    "Email": {
        "type": "object",
        "properties": {
            "id": STR,
            "to": STR,
            "subject": STR,
            "status": {"type": "string", "enum": ["queued", "sending", "sent", "failed"]},
            "attempts": INT,
            "resend_rounds": INT,
            "sent_at": TIME,
            "job_id": STR,
            "error": ERROR_SUMMARY,
        },
    },
    "Export": {
        "type": "object",
        "properties": {
            "id": STR,
            "kind": {"type": "string", "enum": ["posts"]},
            "format": {"type": "string", "enum": ["csv", "json", "xlsx"]},
            "status": {
                "type": "string",
                "enum": ["queued", "running", "succeeded", "failed", "expired"],
            },
            "progress": INT,
            "rows": {"type": "integer", "nullable": True},
            "bytes": {"type": "integer", "nullable": True},
            "job_id": STR,
            "download_url": {"type": "string", "nullable": True},
        },
    },
}

PATHS = {
    "/api/tokens": {
        "post": {
            "summary": "Exchange email and password for a bearer token",
            "security": [],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["email", "password"],
                    "properties": {"email": STR, "password": STR},
                }
            ),
            "responses": {
                "201": _json({"type": "object", "properties": {"token": STR}}, "Created"),
                **_errors(400, 401, 413, 422, 429, 503),
            },
        }
    },
    "/api/posts": {
        "post": {
            "summary": "Create a post",
            "requestBody": _body(
                {"type": "object", "required": ["body"], "properties": {"body": STR}}
            ),
            "responses": {
                "201": _json(
                    {"type": "object", "properties": {"id": INT, "body": STR, "created_at": TIME}},
                    "Created",
                ),
                **_errors(*USER_ERRORS),
            },
        }
    },
    "/api/emails": {
        "post": {
            "summary": "Queue an email",
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": STR,
                    "description": "a repeat within 24 hours answers with the first email",
                }
            ],
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["to", "subject", "body"],
                    "properties": {"to": STR, "subject": STR, "body": STR, "html": STR},
                }
            ),
            "responses": {
                "202": _json(
                    {
                        "type": "object",
                        "properties": {"job_id": STR, "email_id": STR, "status": STR},
                    },
                    "Accepted; Location: /api/jobs/<job_id>",
                ),
                **_errors(*USER_ERRORS),
            },
        }
    },
    "/api/emails/{email_id}": {
        "get": {
            "summary": "An email and its delivery state",
            "parameters": [_id("email_id")],
            "responses": {"200": _json(_ref("Email")), **_errors(401, 404, 503)},
        }
    },
    "/api/exports": {
        "post": {
            "summary": "Export my posts; one unfinished export per kind",
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["kind", "format"],
                    "properties": {
                        "kind": SCHEMAS["Export"]["properties"]["kind"],
                        "format": SCHEMAS["Export"]["properties"]["format"],
                    },
                }
            ),
            "responses": {
                "202": _json(
                    {
                        "type": "object",
                        "properties": {"job_id": STR, "export_id": STR, "status": STR},
                    },
                    "Accepted",
                ),
                **_errors(*USER_ERRORS, 409),
            },
        }
    },
    "/api/exports/{export_id}": {
        "get": {
            "summary": "An export and its progress",
            "parameters": [_id("export_id")],
            "responses": {"200": _json(_ref("Export")), **_errors(401, 404, 503)},
        }
    },
    "/api/exports/{export_id}/download": {
        "get": {
            "summary": "The export's file, as an attachment",
            "parameters": [_id("export_id")],
            "responses": {"200": {"description": "the file"}, **_errors(401, 404, 409, 410, 503)},
        }
    },
    "/exports/download/{signed_token}": {
        "get": {
            "summary": "The export's file, for anyone holding the emailed link",
            "security": [],
            "parameters": [_id("signed_token")],
            "responses": {"200": {"description": "the file"}, **_errors(404, 409, 410, 503)},
        }
    },
    "/api/jobs": {
        "get": {
            "summary": "My jobs (all jobs for an admin), newest first",
            "parameters": [
                {"name": name, "in": "query", "required": False, "schema": schema}
                for name, schema in (
                    ("status", SCHEMAS["Job"]["properties"]["status"]),
                    ("actor", STR),
                    ("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                    ("cursor", STR),
                )
            ],
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": _ref("Job")},
                            "next_cursor": {"type": "string", "nullable": True},
                        },
                    }
                ),
                **_errors(401, 422, 503),
            },
        }
    },
    "/api/jobs/{job_id}": {
        "get": {
            "summary": "A job with its attempt history",
            "parameters": [_id("job_id")],
            "responses": {"200": _json(_ref("Job")), **_errors(401, 404, 503)},
        }
    },
    "/api/jobs/{job_id}/retry": {
        "post": {
            "summary": "Retry a failed or cancelled job (admins)",
            "parameters": [_id("job_id")],
            "responses": {
                "202": _json(
                    {"type": "object", "properties": {"job_id": STR, "status": STR}}, "Accepted"
                ),
                **_errors(401, 403, 404, 409, 503),
            },
        }
    },
    "/api/jobs/{job_id}/cancel": {
        "post": {
            "summary": "Cancel a queued, retrying or failed job (admins)",
            "parameters": [_id("job_id")],
            "responses": {
                "200": _json({"type": "object", "properties": {"job_id": STR, "status": STR}}),
                **_errors(401, 403, 404, 409, 503),
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "The process is alive",
            "security": [],
            "responses": {"200": _json({"type": "object", "properties": {"status": STR}})},
        }
    },
    "/readyz": {
        "get": {
            "summary": "The database and the broker answer",
            "security": [],
            "responses": {
                code: _json(
                    {"type": "object", "properties": {"database": STR, "broker": STR}}, text
                )
                for code, text in (("200", "ready"), ("503", "not ready"))
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "security": [],
            "responses": {"200": {"description": "Prometheus text format"}},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3 document"}},
        }
    },
}

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "jobsapp API", "version": "1"},
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
    "paths": PATHS,
}
