"""What an error group masks: what differs from one job to the next, never what
names the cause."""

from __future__ import annotations

import pytest

from app.error_groups import group_of, masked


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "451 4.3.0 try again later for a.b+c@example.com",
            "451 4.3.0 try again later for <address>",
        ),
        ("email 0b6f1f8e-8e0a-4f53-9a52-4a4c4b9d1e77 has no row", "email <id> has no row"),
        ("connect to 10.0.0.12:2525 refused", "connect to <ip> refused"),
        ("timed out after 2.5 s at row 120000", "timed out after <n> s at row <n>"),
        ("550 5.1.1 mailbox 3 of 7 full", "550 5.1.1 mailbox 3 of 7 full"),
        (None, ""),
    ],
)
def test_masked_hides_what_differs_and_keeps_the_cause(message, expected):
    assert masked(message) == expected


def test_one_cause_for_many_recipients_is_one_group_and_another_cause_is_not():
    first = group_of("send_email", "SMTPDataError", "451 try again later for a@example.com")
    second = group_of("send_email", "SMTPDataError", "451 try again later for b@example.org")
    other = group_of("send_email", "SMTPDataError", "550 no such user for a@example.com")
    elsewhere = group_of("run_export", "SMTPDataError", "451 try again later for a@example.com")
    assert first == second
    assert len({first, other, elsewhere}) == 3
    assert len(first) == 16 and int(first, 16) >= 0
