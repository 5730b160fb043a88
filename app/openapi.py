"""The OpenAPI 3.1 document, generated from the ``@operation`` declarations on
the views (``app/api/spec.py``) and the pydantic models they name: the same
models validate requests and shape responses, so the document cannot drift."""

from __future__ import annotations

import re

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app.api.output import Error
from app.api.spec import ERROR_TEXT, Operation, Raw, Refusal

REF = "#/components/schemas/{model}"


def document(app: Flask) -> dict:
    operations = _operations(app)
    models: set[type[BaseModel]] = {Error}
    for _, _, spec in operations:
        models |= {m for m in (spec.body, spec.query, spec.headers) if m is not None}
        models |= {m for m in spec.responses.values() if isinstance(m, type)}
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation" if _is_request(m, operations) else "serialization") for m in models
    ]
    refs, defs = models_json_schema(
        sorted(modes, key=lambda pair: pair[0].__name__), ref_template=REF
    )
    schemas = {name: schema for name, schema in defs.get("$defs", {}).items()}
    for schema in schemas.values():
        if "enum" in schema:  # app/states.py: its docstrings are for the code's readers
            schema.pop("description", None)
    paths: dict = {}
    for path, method, spec in operations:
        paths.setdefault(path, {})[method] = _operation(spec, path, method, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "jobsapp API", "version": "1"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }


def _operations(app: Flask) -> list[tuple[str, str, Operation]]:
    found = []
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions[rule.endpoint], "openapi", None)
        if spec is None:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), spec))
    return found


def _is_request(model: type[BaseModel], operations) -> bool:
    return any(model in (spec.body, spec.query, spec.headers) for _, _, spec in operations)


def _schema(model: type[BaseModel], refs: dict) -> dict:
    mode = "validation" if (model, "validation") in refs else "serialization"
    return refs[(model, mode)]


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _without_null(schema: dict) -> dict:
    """A parameter is absent or a value, never JSON null: drop the null branch."""
    schema = {k: v for k, v in schema.items() if k not in ("title", "default")}
    branches = [b for b in schema.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        schema.update(branches[0])
    elif branches:
        schema["anyOf"] = branches
    return schema


def _parameters(spec: Operation, path: str) -> list[dict]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", path)
    ]
    for where, model in (("query", spec.query), ("header", spec.headers)):
        if model is None:
            continue
        schema = model.model_json_schema(by_alias=True, ref_template=REF)
        for name, prop in schema["properties"].items():
            required = name in schema.get("required", ())
            parameters.append(
                {"name": name, "in": where, "required": required, "schema": _without_null(prop)}
            )
    return parameters


RETRY_AFTER = {
    "description": "seconds until the request can succeed",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


def _error(error: int | Refusal, refs: dict) -> dict:
    if isinstance(error, int):
        return {str(error): _json(_schema(Error, refs), ERROR_TEXT[error])}
    answer = _json(_schema(Error, refs), error.description)
    if error.retry_after:
        answer["headers"] = {"Retry-After": RETRY_AFTER}
    return {str(error.status): answer}


def _operation(spec: Operation, path: str, method: str, refs: dict) -> dict:
    responses: dict = {}
    for status, model in spec.responses.items():
        if model is None:
            responses[str(status)] = {"description": "no content"}
        elif isinstance(model, Raw):
            content: dict[str, dict] = {media: {"schema": {}} for media in model.media_types}
            responses[str(status)] = {"description": model.description, "content": content}
        else:
            responses[str(status)] = _json(_schema(model, refs), "OK")
    for error in spec.errors:
        responses.update(_error(error, refs))
    result: dict = {
        "summary": spec.summary,
        "operationId": re.sub(r"\W+", "_", f"{method}{path}").strip("_"),
        "parameters": _parameters(spec, path),
        "responses": responses,
    }
    if spec.body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(spec.body, refs)}},
        }
    if not spec.auth:
        result["security"] = []
    return result
