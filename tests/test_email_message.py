"""No header can be injected into a sent message: the API refuses every
line-breaking character in ``to`` and ``subject`` (422), and a message built
around that validation, straight from a row, still carries no extra header."""

from __future__ import annotations

import email
import email.policy

import pytest

from app import email_message
from app.models import Email

# Every character Python's str.splitlines (and so the email package) breaks lines on.
LINE_BREAKS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\r", "\n"]
IDS = [f"U+{ord(c):04X}" for c in LINE_BREAKS]


def _forged_subject(c: str) -> str:
    return (
        f"Invoice{c}From: ceo@bank.example{c}Reply-To: attacker@evil.example{c}{c}"
        "Your account is locked"
    )


@pytest.mark.parametrize("c", LINE_BREAKS, ids=IDS)
@pytest.mark.parametrize("field", ["to", "subject"])
def test_api_refuses_a_line_break_in_a_header_field(client, user, stub_broker, c, field):
    body = {"to": "carol@example.com", "subject": "Hello", "body": "Hi"}
    body[field] = (
        f"carol@example.com{c}Bcc: eve@example.com" if field == "to" else _forged_subject(c)
    )

    response = client.post("/api/emails", json=body, headers=user[1])

    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == [field]


@pytest.mark.parametrize("c", LINE_BREAKS, ids=IDS)
def test_a_message_built_from_a_forged_subject_carries_no_extra_header(app, c):
    row = Email(
        to="carol@example.com",
        subject=_forged_subject(c),
        body="The real body",
        message_id="<1@example.com>",
    )
    with app.app_context():
        message = email_message.build(row)
        message.sender = "noreply@example.com"
        raw = message.as_bytes()

    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert sorted(parsed.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Content-Type",
            "Content-Transfer-Encoding",
            "MIME-Version",
        ]
    )
    assert parsed.get_all("From") == ["noreply@example.com"]
    assert parsed["Reply-To"] is None
    assert parsed.get_content().strip() == "The real body"
    assert "Invoice" in parsed["Subject"] and "locked" in parsed["Subject"]


@pytest.mark.parametrize("c", LINE_BREAKS, ids=IDS)
def test_a_recipient_with_a_line_break_is_refused_for_good(app, c):
    row = Email(
        to=f"carol@example.com{c}Bcc: eve@example.com",
        subject="s",
        body="b",
        message_id="<1@example.com>",
    )
    with app.app_context(), pytest.raises(email_message.UnsafeHeader):
        email_message.build(row)
