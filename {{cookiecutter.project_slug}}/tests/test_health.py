"""The health check."""

import pytest

from {{ cookiecutter.project_slug }} import create_app


def test_ok(client):
    """With the database answering, the check says ok."""
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok"}


def unreachable_app(url):
    """An app whose database cannot be reached."""
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "TRUSTED_HOSTS": None})


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////nonexistent-directory/unreachable.sqlite3",
{% if cookiecutter.database == 'postgresql' %}
        # Port 1 on the loopback interface: nothing listens there.
        "postgresql+psycopg://someone:s3cret-password@127.0.0.1:1/unreachable",
{% elif cookiecutter.database == 'mysql' %}
        # Port 1 on the loopback interface: nothing listens there.
        "mysql+pymysql://someone:s3cret-password@127.0.0.1:1/unreachable?charset=utf8mb4",
{% endif %}
    ],
)
def test_database_unreachable(url):
    """Without the database the check answers 503 with a short reason and no secret."""
    app = unreachable_app(url)
    response = app.test_client().get("/health")
    assert response.status_code == 503
    assert response.json["status"] == "error"
    assert response.json["database"] == "OperationalError"
    assert "s3cret" not in response.text
