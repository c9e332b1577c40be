"""The database, its migrations and the init-db command."""

{% if cookiecutter.database == 'postgresql' %}
import time
{% endif %}
from pathlib import Path

import click
{% if cookiecutter.database == 'postgresql' %}
import psycopg
{% endif %}
from alembic.migration import MigrationContext
from flask.cli import with_appcontext
from flask_migrate import Migrate, upgrade
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base whose constraint names are the same on every database."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


def current_revision():
    """Return the schema revision the database is at, or None when it has none."""
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def init_db():
    """Apply every migration the database lacks."""
    upgrade()


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create or upgrade the database schema to the newest migration."""
    before = current_revision()
    init_db()
    after = current_revision()
    if before == after:
        click.echo(f"The database schema is up to date (revision {after}).")
    else:
        click.echo(f"Upgraded the database schema from {before or 'nothing'} to revision {after}.")


def bounded_engine_options(app):
    """SQLALCHEMY_ENGINE_OPTIONS plus the connect and statement timeouts of config.py, as the driver takes them."""
    options = dict(app.config["SQLALCHEMY_ENGINE_OPTIONS"])
    backend = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name()
    connect = app.config["DATABASE_CONNECT_TIMEOUT"]
    statement = app.config["DATABASE_STATEMENT_TIMEOUT"]
    timeouts = driver_timeouts(backend, connect, statement)
    options["connect_args"] = {**timeouts, **options.get("connect_args", {})}
    return options


def driver_timeouts(backend, connect, statement):
    """The connect arguments that bound each wait for the database, in seconds."""
    if backend == "sqlite":
        # How long to wait for another process's lock before "database is locked".
        return {"timeout": statement}
{% if cookiecutter.database == 'postgresql' %}
    if backend == "postgresql":
        # The server cancels a longer statement or lock wait itself (it counts milliseconds);
        # BoundedConnection gives up on a server that does not answer at all.
        options = f"-c statement_timeout={int(statement * 1000)}"
        return {"connect_timeout": connect, "options": options}
{% elif cookiecutter.database == 'mysql' %}
    if backend == "mysql":
        # PyMySQL's socket timeouts bound every read and write, the server's greeting included, so a
        # frozen or vanished server costs at most that; InnoDB bounds a lock wait on the server.
        return {
            "connect_timeout": connect,
            "read_timeout": statement + 1,
            "write_timeout": statement + 1,
            "init_command": f"SET SESSION innodb_lock_wait_timeout = {statement}",
        }
{% endif %}
    return {}


def bound_waits(engine, statement_timeout):
    """What the driver cannot take as a connect argument, hooked into each new connection."""
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        event.listen(engine, "connect", use_write_ahead_log)
{% if cookiecutter.database == 'postgresql' %}
    elif backend == "postgresql":
        # The server's own statement_timeout has fired 1 s earlier if it was alive.
        read_timeout = statement_timeout + 1

        @event.listens_for(engine, "do_connect")
        def connect(dialect, connection_record, cargs, cparams):
            connection = BoundedConnection.connect(*cargs, **cparams)
            connection.read_timeout = read_timeout
            return connection
{% endif %}


def use_write_ahead_log(dbapi_connection, connection_record):
    """WAL: readers never wait for a writer, nor a writer for readers."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode = WAL")
    # Some builds default WAL to NORMAL, which may lose the last commits on power loss: a saved note stays saved.
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()
{% if cookiecutter.database == 'postgresql' %}


class BoundedConnection(psycopg.Connection):
    """A psycopg connection that gives up on a server that stops answering.

    libpq has no read timeout: a frozen server, or one behind a network that keeps the TCP
    session, would hold the request until the app server kills the worker at 30 s.
    """

    read_timeout = None  # seconds

    def wait(self, gen, interval=0.1, timeout=None):
        """Consume `gen` as psycopg does (waking every `interval` for Ctrl-C), for at most read_timeout."""
        start = time.monotonic()
        try:
            return super().wait(gen, interval=interval, timeout=timeout or self.read_timeout)
        except psycopg.OperationalError:
            if self.read_timeout and time.monotonic() - start >= self.read_timeout:
                # Cut off mid-answer, the connection is unusable: closed, the pool replaces it.
                self.close()
            raise
{% endif %}


def init_app(app):
    """Register the database, the migrations and the init-db command with the app."""
    # Imported for its side effect: the models register their tables with the metadata.
    from . import models  # noqa: F401

    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = bounded_engine_options(app)
    db.init_app(app)
    with app.app_context():
        bound_waits(db.engine, app.config["DATABASE_STATEMENT_TIMEOUT"])
    # Shipped inside the package, so an installed copy finds them from any directory.
    migrate.init_app(app, db, directory=str(Path(app.root_path) / "migrations"))
    app.cli.add_command(init_db_command)
