"""The database: migrations, the init-db command, a round trip."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade
from sqlalchemy import inspect

from {{ cookiecutter.project_slug }}.database import current_revision, db
from {{ cookiecutter.project_slug }}.models import Note


def test_init_db_command(app, runner):
    """init-db builds the schema from nothing, and a second run changes nothing."""
    with app.app_context():
        downgrade(revision="base")
        assert "note" not in inspect(db.engine).get_table_names()

    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "Upgraded the database schema from nothing to revision" in result.output

    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    with app.app_context():
        assert "note" in inspect(db.engine).get_table_names()
        assert current_revision() is not None


def test_round_trip(app):
    """A note written in one session reads back unchanged in the next, with its time."""
    body = "Grüße, 日本語 and 🚀"
    with app.app_context():
        db.session.add(Note(body=body))
        db.session.commit()
    with app.app_context():
        note = db.session.scalars(db.select(Note)).one()
        assert note.body == body
        assert note.created_at is not None


def test_migrations_match_models(app):
    """The migrations build exactly the schema the models describe."""
    with app.app_context(), db.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), db.metadata) == []
