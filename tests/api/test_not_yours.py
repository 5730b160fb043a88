"""Another user's job, email or export answers 404, word for word as one that
does not exist; its owner and an admin get it."""

from __future__ import annotations

import pytest

EMAIL = {"to": "carol@example.com", "subject": "Hi", "body": "Hello"}


@pytest.fixture()
def mine(client, user, stub_broker):
    """Paths to the user's own email, its job and an export."""
    email = client.post("/api/emails", json=EMAIL, headers=user[1]).get_json()
    export = client.post(
        "/api/exports", json={"kind": "posts", "format": "csv"}, headers=user[1]
    ).get_json()
    return {
        "no such job": f"/api/jobs/{email['job_id']}",
        "no such email": f"/api/emails/{email['email_id']}",
        "no such export": f"/api/exports/{export['export_id']}",
    }


@pytest.mark.parametrize("message", ["no such job", "no such email", "no such export"])
def test_another_users_row_answers_404_like_a_missing_one(client, other_user, mine, message):
    path = mine[message]
    missing = path.rsplit("/", 1)[0] + "/no-such-id"

    theirs = client.get(path, headers=other_user[1])
    absent = client.get(missing, headers=other_user[1])

    assert (theirs.status_code, theirs.get_json()) == (404, {"error": message})
    assert (absent.status_code, absent.get_json()) == (404, {"error": message})


def test_another_users_export_download_answers_404(client, other_user, mine):
    response = client.get(mine["no such export"] + "/download", headers=other_user[1])

    assert (response.status_code, response.get_json()) == (404, {"error": "no such export"})


@pytest.mark.parametrize("message", ["no such job", "no such email", "no such export"])
def test_owner_and_admin_get_the_row(client, user, admin, mine, message):
    assert client.get(mine[message], headers=user[1]).status_code == 200
    assert client.get(mine[message], headers=admin[1]).status_code == 200
