"""The migrations and the models describe the same schema, on every database."""

from __future__ import annotations

from webapp.extensions import alembic


def test_models_match_migrations(app):
    with app.app_context():
        assert alembic.compare_metadata() == []
