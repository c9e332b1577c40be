"""Fixtures: an app on a freshly migrated database, its test client and CLI runner."""

import os

import pytest
from sqlalchemy import text

from {{ cookiecutter.project_slug }} import create_app
from {{ cookiecutter.project_slug }}.database import db, init_db

DOMAIN = {{ cookiecutter.domain_name | tojson }}


@pytest.fixture
def database_url(tmp_path):
    """DATABASE_URL (a scratch PostgreSQL or MySQL database: the tests drop their tables), else a new SQLite file."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def app(database_url):
    """The app on a database migrated to the newest revision, emptied again afterwards."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "SQLALCHEMY_DATABASE_URI": database_url,
            # The test client calls SERVER_NAME, which must be one of TRUSTED_HOSTS.
            "SERVER_NAME": DOMAIN,
        }
    )
    with app.app_context():
        init_db()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.engine.dispose()


@pytest.fixture
def client(app):
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A runner for the app's command-line commands."""
    return app.test_cli_runner()
