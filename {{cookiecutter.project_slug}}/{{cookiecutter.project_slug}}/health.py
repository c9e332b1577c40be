"""A health check for load balancers and monitoring."""

from flask import Blueprint, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .database import db

bp = Blueprint("health", __name__)


def check_database():
    """Read the schema's revision, as every page would read its tables; on SQLite, take the write lock too."""
    with db.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            # SELECT 1 never opens the file; this waits, like a saved note would, for another process's lock.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        connection.execute(text("SELECT version_num FROM alembic_version")).all()
        connection.rollback()


@bp.get("/health")
def health():
    """Answer 200 when the database answers a query, 503 otherwise."""
    try:
        check_database()
    except SQLAlchemyError as error:
        # The details (host, user, driver message) go to the log, not to the public answer.
        current_app.logger.exception("Health check: the database does not answer")
        reason = type(getattr(error, "orig", None) or error).__name__
        return {"status": "error", "database": reason}, 503
    return {"status": "ok", "database": "ok"}
