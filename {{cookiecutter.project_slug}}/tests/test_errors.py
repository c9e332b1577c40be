"""A database that is down, silent or locked: bounded waits, 503 with a short page, the rest of the site served."""

import socket
import sqlite3
import time

import pytest
from sqlalchemy.engine import make_url

from {{ cookiecutter.project_slug }} import create_app
from {{ cookiecutter.project_slug }}.database import db, init_db

DOMAIN = {{ cookiecutter.domain_name | tojson }}


def make_app(url, **settings):
    """An app on `url` (no schema applied) with short database timeouts."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test",
        "SQLALCHEMY_DATABASE_URI": url,
        "SERVER_NAME": DOMAIN,
        "DATABASE_CONNECT_TIMEOUT": 2,
        "DATABASE_STATEMENT_TIMEOUT": 1,
    }
    return create_app({**config, **settings})


def with_csrf_token(client):
    """A session that carries a CSRF token, without a page (which would need the database)."""
    with client.session_transaction() as session:
        session["csrf_token"] = "token"
    return {"csrf_token": "token"}


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never says a word, as a frozen database server does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def silent_url(port):
{% if cookiecutter.database == 'postgresql' %}
    return f"postgresql+psycopg://someone:s3cret-password@127.0.0.1:{port}/silent"
{% elif cookiecutter.database == 'mysql' %}
    return f"mysql+pymysql://someone:s3cret-password@127.0.0.1:{port}/silent?charset=utf8mb4"
{% else %}
    return None
{% endif %}


def test_database_down(tmp_path):
    """Pages that need the database answer 503 with a short page and Retry-After; the home page still serves."""
    app = make_app("sqlite:////nonexistent-directory/unreachable.sqlite3")
    client = app.test_client()
    assert client.get("/").status_code == 200
    response = client.get("/notes/")
    assert response.status_code == 503
    assert "Temporarily unavailable" in response.text
    assert response.headers["Retry-After"] == "10"
    assert "nonexistent" not in response.text
    response = client.post("/notes/", data={"body": "kept?", **with_csrf_token(client)})
    assert response.status_code == 503


{% if cookiecutter.database != 'sqlite' %}
def test_silent_server(silent_server):
    """A server that accepts and never answers costs each request a bounded wait, then 503."""
    app = make_app(silent_url(silent_server))
    client = app.test_client()
    for path in ("/notes/", "/health"):
        start = time.monotonic()
        response = client.get(path)
        took = time.monotonic() - start
        assert response.status_code == 503, response.text
        assert took < 3.5, f"{path} waited {took:.1f} s"
    assert "s3cret" not in response.text
    assert client.get("/").status_code == 200


{% endif %}
@pytest.fixture
def sqlite_app(tmp_path):
    """An app on a migrated SQLite file, whatever database the other tests use."""
    app = make_app(f"sqlite:///{tmp_path / 'locked.sqlite3'}")
    with app.app_context():
        init_db()
    yield app
    with app.app_context():
        db.engine.dispose()


def test_sqlite_write_ahead_log(sqlite_app, tmp_path):
    """The SQLite file is in WAL mode, synchronous FULL: readers never wait for a writer, commits survive power loss."""
    with sqlite_app.app_context(), db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2


def test_sqlite_locked(sqlite_app, tmp_path):
    """Another process holding the write lock: reads go on, writes and /health say 503 after the busy timeout."""
    client = sqlite_app.test_client()
    fields = with_csrf_token(client)
    holder = sqlite3.connect(tmp_path / "locked.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        response = client.get("/health")
        took = time.monotonic() - start
        assert response.status_code == 503
        assert response.json == {"status": "error", "database": "OperationalError"}
        assert 0.9 < took < 2.5, f"/health waited {took:.1f} s for a 1 s busy timeout"
        assert client.get("/notes/").status_code == 200
        assert client.post("/notes/", data={"body": "waits", **fields}).status_code == 503
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.get("/health").status_code == 200
    assert client.post("/notes/", data={"body": "saved", **fields}).status_code == 302


def test_timeouts_reach_the_driver(app):
    """The connect and statement timeouts of config.py are in the engine's connect arguments."""
    connect_args = app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]
    backend = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name()
    expected = {
        "sqlite": {"timeout": 5},
{% if cookiecutter.database == 'postgresql' %}
        "postgresql": {"connect_timeout": 3, "options": "-c statement_timeout=5000"},
{% elif cookiecutter.database == 'mysql' %}
        "mysql": {
            "connect_timeout": 3,
            "read_timeout": 6,
            "write_timeout": 6,
            "init_command": "SET SESSION innodb_lock_wait_timeout = 5",
        },
{% endif %}
    }[backend]
    assert connect_args == expected
{% if cookiecutter.database == 'postgresql' %}


@pytest.fixture
def postgresql_app(database_url):
    """The app on the test PostgreSQL database (DATABASE_URL), with a 1 s statement timeout."""
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("needs DATABASE_URL of a PostgreSQL database")
    app = make_app(database_url)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_statement_timeout(postgresql_app):
    """The server cancels a statement past DATABASE_STATEMENT_TIMEOUT."""
    from sqlalchemy.exc import OperationalError

    with postgresql_app.app_context(), db.engine.connect() as connection:
        start = time.monotonic()
        with pytest.raises(OperationalError, match="statement timeout"):
            connection.exec_driver_sql("SELECT pg_sleep(3)")
        assert time.monotonic() - start < 2


def test_read_timeout(postgresql_app):
    """A server that stops answering (here: a statement with no server-side limit) is given up 1 s later."""
    from sqlalchemy.exc import OperationalError

    with postgresql_app.app_context(), db.engine.connect() as connection:
        connection.exec_driver_sql("SET statement_timeout = 0")
        start = time.monotonic()
        with pytest.raises(OperationalError):
            connection.exec_driver_sql("SELECT pg_sleep(5)")
        assert time.monotonic() - start < 3
        assert connection.invalidated
{% elif cookiecutter.database == 'mysql' %}


@pytest.fixture
def mysql_app(database_url):
    """The app on the test MySQL database (DATABASE_URL), with a 1 s statement timeout."""
    if make_url(database_url).get_backend_name() != "mysql":
        pytest.skip("needs DATABASE_URL of a MySQL or MariaDB database")
    app = make_app(database_url)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_read_timeout(mysql_app):
    """A statement that takes longer than the read timeout is given up, and its connection dropped."""
    from sqlalchemy.exc import OperationalError

    with mysql_app.app_context(), db.engine.connect() as connection:
        start = time.monotonic()
        with pytest.raises(OperationalError):
            connection.exec_driver_sql("SELECT SLEEP(5)")
        assert time.monotonic() - start < 3
        assert connection.invalidated
{% endif %}
