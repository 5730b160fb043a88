"""One rule for "an unfinished export": the query predicate, the run's check and
the unique index that allows one per user and kind agree on every state."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db import db
from app.exports.service import unfinished
from app.models import Export
from app.states import UNFINISHED_EXPORTS, ExportStatus


@pytest.mark.parametrize("status", list(ExportStatus))
def test_the_predicate_and_the_unique_index_agree_on_each_state(app, user, status):
    user_id, _ = user
    with app.app_context():
        # Given an export in this state
        first = Export(user_id=user_id, kind="posts", format="csv", status=status)
        db.session.add(first)
        db.session.commit()

        # Then the predicate finds it exactly when it is unfinished
        found = db.session.scalars(select(Export.id).where(unfinished())).all()
        assert (found == [first.id]) == (status in UNFINISHED_EXPORTS)

        # And the index refuses a second unfinished one exactly then
        db.session.add(Export(user_id=user_id, kind="posts", format="json"))
        if status in UNFINISHED_EXPORTS:
            with pytest.raises(IntegrityError):
                db.session.commit()
        else:
            db.session.commit()
