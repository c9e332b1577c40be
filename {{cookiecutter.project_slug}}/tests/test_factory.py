"""The application factory."""

from {{ cookiecutter.project_slug }} import create_app


def test_config():
    """Settings given to the factory replace the environment and reach the app."""
    assert not create_app({"SECRET_KEY": "k" * 32, "SQLALCHEMY_DATABASE_URI": "sqlite://"}).testing
    assert create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"}).testing


def test_blueprints(app):
    """The pages and the health check are registered."""
    assert {"main", "notes", "health"} <= set(app.blueprints)
