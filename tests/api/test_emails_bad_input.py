"""POST /api/emails with bad input: the status code, a JSON error naming the
field, and nothing written to the database or the broker."""

from __future__ import annotations

import json

import pytest

from tests.api.email_helpers import GOOD, ONE_MIB, assert_nothing_written, post_email

# --- bad input: status, JSON error naming the field, nothing written ----------

BAD_JSON_BODIES = [
    pytest.param('{"to": "carol@example.com", "subj', "application/json", id="malformed-json"),
    pytest.param(b"\xff\xfe{}", "application/json", id="not-utf8"),
    pytest.param("", "application/json", id="empty-body"),
    pytest.param(json.dumps(GOOD), "text/plain", id="text-plain"),
    pytest.param(json.dumps(GOOD), "application/x-www-form-urlencoded", id="form-encoded"),
    pytest.param(json.dumps(GOOD), None, id="no-content-type"),
    pytest.param(json.dumps([GOOD]), "application/json", id="json-array"),
    pytest.param('"a string"', "application/json", id="json-string"),
    pytest.param("42", "application/json", id="json-number"),
    pytest.param("null", "application/json", id="json-null"),
]


@pytest.mark.parametrize(("data", "content_type"), BAD_JSON_BODIES)
def test_unusable_body_answers_400_json_error_and_writes_nothing(
    app, client, user, stub_broker, data, content_type
):
    _, headers = user

    response = client.post("/api/emails", data=data, content_type=content_type, headers=headers)

    assert response.status_code == 400
    assert response.is_json
    assert response.get_json()["error"]
    assert_nothing_written(app, stub_broker)


def test_deeply_nested_json_answers_400_not_500(app, client, user, stub_broker):
    _, headers = user

    response = client.post(
        "/api/emails", data="[" * 100_000, content_type="application/json", headers=headers
    )

    assert response.status_code == 400
    assert_nothing_written(app, stub_broker)


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-header"),
        pytest.param("Bearer not-a-real-token", id="unknown-token"),
        pytest.param("Bearer ", id="empty-token"),
        pytest.param("Basic YWxpY2U6cHc=", id="basic-scheme"),
    ],
)
def test_missing_or_bad_token_answers_401_and_writes_nothing(
    app, client, user, stub_broker, authorization
):
    headers = {} if authorization is None else {"Authorization": authorization}

    response = post_email(client, headers)

    assert response.status_code == 401
    assert response.get_json()["error"]
    assert_nothing_written(app, stub_broker)


def test_token_is_checked_before_the_body(app, client, stub_broker):
    response = client.post("/api/emails", data="{", content_type="application/json")

    assert response.status_code == 401
    assert_nothing_written(app, stub_broker)


def test_body_over_one_mib_answers_413_and_writes_nothing(app, client, user, stub_broker):
    _, headers = user
    payload = json.dumps({**GOOD, "body": "x" * ONE_MIB})

    response = client.post(
        "/api/emails", data=payload, content_type="application/json", headers=headers
    )

    assert response.status_code == 413
    assert response.get_json()["error"]
    assert_nothing_written(app, stub_broker)


def test_body_just_under_one_mib_is_accepted(app, client, user, stub_broker):
    _, headers = user
    app.config["EMAIL_MAX_BODY_BYTES"] = 2 * ONE_MIB  # the request's limit is the one tested
    envelope = len(json.dumps({**GOOD, "body": ""}))
    payload = json.dumps({**GOOD, "body": "x" * (ONE_MIB - envelope)})
    assert len(payload) == ONE_MIB

    response = client.post(
        "/api/emails", data=payload, content_type="application/json", headers=headers
    )

    assert response.status_code == 202


INVALID_FIELDS = [
    # a bad address
    pytest.param({"to": "not-an-address"}, "to", id="to-no-at"),
    pytest.param({"to": "carol@"}, "to", id="to-no-domain"),
    pytest.param({"to": "@example.com"}, "to", id="to-no-local-part"),
    pytest.param({"to": "carol@example.com, dave@example.com"}, "to", id="to-two-addresses"),
    pytest.param({"to": "Carol <carol@example.com>"}, "to", id="to-display-name"),
    pytest.param({"to": ""}, "to", id="to-empty"),
    pytest.param({"to": "c" * 250 + "@example.com"}, "to", id="to-too-long"),
    # an empty subject
    pytest.param({"subject": ""}, "subject", id="subject-empty"),
    pytest.param({"subject": "   "}, "subject", id="subject-blank"),
    pytest.param({"subject": "x" * 999}, "subject", id="subject-over-998"),
    # CR or LF in to or subject (header injection)
    pytest.param({"to": "carol@example.com\r\nBcc: eve@example.com"}, "to", id="to-crlf"),
    pytest.param({"to": "carol@example.com\n"}, "to", id="to-lf"),
    pytest.param({"to": "carol@example.com\rx"}, "to", id="to-cr"),
    pytest.param({"subject": "Hi\r\nBcc: eve@example.com"}, "subject", id="subject-crlf"),
    pytest.param({"subject": "Hi\nthere"}, "subject", id="subject-lf"),
    pytest.param({"subject": "Hi\rthere"}, "subject", id="subject-cr"),
    # missing fields
    pytest.param({"body": None}, "body", id="body-null"),
    pytest.param({"to": None}, "to", id="to-null"),
    pytest.param({"subject": None}, "subject", id="subject-null"),
    # non-string fields
    pytest.param({"to": 42}, "to", id="to-number"),
    pytest.param({"to": ["carol@example.com"]}, "to", id="to-list"),
    pytest.param({"subject": True}, "subject", id="subject-bool"),
    pytest.param({"subject": {"text": "Hello"}}, "subject", id="subject-object"),
    pytest.param({"body": 3.5}, "body", id="body-number"),
    pytest.param({"body": ["Hi"]}, "body", id="body-list"),
    pytest.param({"html": 1}, "html", id="html-number"),
]


@pytest.mark.parametrize(("change", "field"), INVALID_FIELDS)
def test_invalid_field_answers_422_naming_it_and_writes_nothing(
    app, client, user, stub_broker, change, field
):
    _, headers = user
    payload = {name: value for name, value in {**GOOD, **change}.items() if value is not None}

    response = post_email(client, headers, payload)

    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]
    assert list(body["fields"]) == [field]
    assert body["fields"][field]
    assert_nothing_written(app, stub_broker)


@pytest.mark.parametrize("missing", ["to", "subject", "body"])
def test_absent_required_field_answers_422_naming_it(app, client, user, stub_broker, missing):
    _, headers = user
    payload = {name: value for name, value in GOOD.items() if name != missing}

    response = post_email(client, headers, payload)

    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == [missing]
    assert_nothing_written(app, stub_broker)


def test_every_bad_field_is_named_in_one_answer(app, client, user, stub_broker):
    _, headers = user

    response = post_email(client, headers, {"to": "nope", "subject": "a\nb", "html": 1})

    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"to", "subject", "body", "html"}
    assert_nothing_written(app, stub_broker)


@pytest.mark.parametrize(
    "key", [pytest.param("k" * 256, id="256-chars"), pytest.param("   ", id="blank")]
)
def test_bad_idempotency_key_answers_422_naming_the_header(app, client, user, stub_broker, key):
    _, headers = user

    response = post_email(client, {**headers, "Idempotency-Key": key})

    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == ["Idempotency-Key"]
    assert_nothing_written(app, stub_broker)


def test_idempotency_key_of_255_chars_is_accepted(client, user, stub_broker):
    _, headers = user

    response = post_email(client, {**headers, "Idempotency-Key": "k" * 255})

    assert response.status_code == 202


# --- internationalised addresses -----------------------------------------------


@pytest.mark.parametrize(
    "to",
    [
        pytest.param("jörg@example.com", id="latin-accent"),
        pytest.param("用户@例子.广告", id="cjk-local-and-domain"),
        pytest.param("иван@пример.рф", id="cyrillic"),
    ],
)
def test_a_local_part_that_is_not_ascii_answers_422_saying_so_and_writes_nothing(
    app, client, user, stub_broker, to
):
    # The SMTP client does not speak SMTPUTF8: accepted, it could never be sent.
    _, headers = user

    response = post_email(client, headers, {**GOOD, "to": to})

    assert response.status_code == 422
    fields = response.get_json()["fields"]
    assert list(fields) == ["to"]
    assert "before the @ must be ASCII" in fields["to"]
    assert_nothing_written(app, stub_broker)


def test_an_internationalised_domain_is_accepted_and_kept_in_its_idna_form(
    app, client, user, stub_broker
):
    _, headers = user

    response = post_email(client, headers, {**GOOD, "to": "joerg@Bücher.example"})

    assert response.status_code == 202
    email = client.get(f"/api/emails/{response.get_json()['email_id']}", headers=headers)
    assert email.get_json()["to"] == "joerg@xn--bcher-kva.example"
