"""Hostile text never reaches a 500 (SQLite; the PostgreSQL twin is in
tests/integration/test_hostile_input_postgres.py), and what ``app/text.py`` refuses."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DataError

from app import text
from tests.support.hostile import PARAMS, send


@pytest.mark.parametrize(("method", "path", "data", "expected"), PARAMS)
def test_hostile_request_gets_a_4xx_never_a_500(
    client, admin, stub_broker, method, path, data, expected
):
    assert send(client, admin[1], method, path, data).status_code == expected


@pytest.mark.parametrize("c", ["\x00", "\ud800", "\udfff"])
def test_storable_refuses_nul_and_lone_surrogates(c):
    assert not text.storable(f"a{c}b")
    assert text.storable("naïve ☃ 😀")


@pytest.mark.parametrize("c", ["\t", "\x0b", "\x7f", "\x85", "\x9f", "\u2028", "\u2029"])
def test_single_line_refuses_every_control_and_line_separator(c):
    assert not text.single_line(f"a{c}b")
    assert text.single_line("Re: naïve ☃")


def test_a_data_error_the_driver_raises_becomes_a_422(app, client, user, monkeypatch):
    # Given a value validation let through but the database refuses
    def refuse(*args, **kwargs):
        raise DataError("SELECT ...", {}, Exception("invalid byte sequence"))

    monkeypatch.setattr("app.jobs.listing.newest_first", refuse)

    response = client.get("/api/jobs", headers=user[1])

    assert response.status_code == 422
    assert response.get_json()["error"]


def test_made_storable_drops_nuls_and_lone_surrogates_and_cuts_to_the_limit():
    assert text.made_storable("451 a\x00b\udc80c later", 9) == "451 abc l"
    assert text.storable_json({"k\x00": ["v\x00", 1, None]}) == {"k": ["v", 1, None]}
