"""The database, its migrations and the init-db command."""

from pathlib import Path

import click
from alembic.migration import MigrationContext
from flask.cli import with_appcontext
from flask_migrate import Migrate, upgrade
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
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


def init_app(app):
    """Register the database, the migrations and the init-db command with the app."""
    # Imported for its side effect: the models register their tables with the metadata.
    from . import models  # noqa: F401

    db.init_app(app)
    # Shipped inside the package, so an installed copy finds them from any directory.
    migrate.init_app(app, db, directory=str(Path(app.root_path) / "migrations"))
    app.cli.add_command(init_db_command)
