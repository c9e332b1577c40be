"""Settings: defaults, the environment, secrets, hosts, cookies and the proxy in front."""

import pytest
from flask import request
from sqlalchemy import inspect
from werkzeug.middleware.proxy_fix import ProxyFix

from {{ cookiecutter.project_slug }} import create_app
from {{ cookiecutter.project_slug }}.database import db

DOMAIN = {{ cookiecutter.domain_name | tojson }}
# This stack has {{ 'an HTTP proxy' if cookiecutter.__http_proxy else 'no HTTP proxy' }} in front of the app.
BEHIND_HTTP_PROXY = {{ 'True' if cookiecutter.__http_proxy else 'False' }}


@pytest.fixture
def environment(monkeypatch):
    """A clean FLASK_* environment for create_app() to read."""
    for name in ("FLASK_SECRET_KEY", "FLASK_SQLALCHEMY_DATABASE_URI", "FLASK_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_production_refuses_without_secret_key(environment):
    """Without a secret key production stops, saying where the key belongs."""
    with pytest.raises(RuntimeError, match="FLASK_SECRET_KEY") as error:
        create_app()
    assert {{ cookiecutter.__env_file | tojson }} in str(error.value)
    assert "README" in str(error.value)


@pytest.mark.parametrize("key", ["x", "a" * 31, "é" * 15])
def test_production_refuses_short_secret_key(environment, key):
    """A key under 32 bytes (é is two) stops production, saying how to make a good one."""
    environment.setenv("FLASK_SECRET_KEY", key)
    environment.setenv("FLASK_SQLALCHEMY_DATABASE_URI", "sqlite://")
    with pytest.raises(RuntimeError, match="fewer than 32") as error:
        create_app()
    assert "token_hex(32)" in str(error.value)


def test_production_reads_environment(environment):
    """FLASK_* variables set the configuration, JSON values typed."""
    environment.setenv("FLASK_SECRET_KEY", "from-the-environment-32-bytes-long")
    environment.setenv("FLASK_SQLALCHEMY_DATABASE_URI", "sqlite://")
    environment.setenv("FLASK_MAX_CONTENT_LENGTH", "1024")
    app = create_app()
    assert not app.debug
    assert app.config["SECRET_KEY"] == "from-the-environment-32-bytes-long"
    assert app.config["MAX_CONTENT_LENGTH"] == 1024


def test_debug_makes_key_and_schema(environment, tmp_path):
    """The debug server runs without settings: a throw-away key, a migrated database."""
    environment.setenv("FLASK_DEBUG", "1")
    environment.setenv("FLASK_SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'debug.sqlite3'}")
    app = create_app()
    assert app.debug
    assert app.config["SECRET_KEY"]
    assert "localhost" in app.config["TRUSTED_HOSTS"]
    with app.app_context():
        assert "note" in inspect(db.engine).get_table_names()
        db.engine.dispose()


def test_defaults(app):
    """Cookies stay out of scripts and cross-site posts; uploads are capped at 16 MiB."""
    assert app.config["TRUSTED_HOSTS"] == [DOMAIN]
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    # HTTPS in front: the session cookie is never sent over plain HTTP.
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["PREFERRED_URL_SCHEME"] == "https"
    assert app.config["MAX_CONTENT_LENGTH"] == 16 * 1024 * 1024
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True


def test_trusted_hosts(client):
    """Only the site's own domain is served."""
    assert client.get("/").status_code == 200
    assert client.get("/", base_url="http://attacker.example").status_code == 400


def test_request_size_limit(client):
    """A body over MAX_CONTENT_LENGTH is refused with 413."""
    response = client.post("/notes/", data={"body": "x" * (16 * 1024 * 1024 + 1)})
    assert response.status_code == 413


def test_forwarded_headers(app):
    """X-Forwarded-* count only where an HTTP proxy is in front, and then one hop only."""
    assert isinstance(app.wsgi_app, ProxyFix) is BEHIND_HTTP_PROXY
    app.add_url_rule("/probe", "probe", lambda: f"{request.scheme} {request.remote_addr}")
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    # Over plain HTTP, so that only a trusted X-Forwarded-Proto can make it https.
    response = app.test_client().get("/probe", headers=headers, base_url=f"http://{DOMAIN}")
    assert response.text == ("https 203.0.113.7" if BEHIND_HTTP_PROXY else "http 127.0.0.1")
