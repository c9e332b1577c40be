"""A health check for load balancers and monitoring."""

from flask import Blueprint, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .database import db

bp = Blueprint("health", __name__)


@bp.get("/health")
def health():
    """Answer 200 when the database answers a query, 503 otherwise."""
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        # The details (host, user, driver message) go to the log, not to the public answer.
        current_app.logger.exception("Health check: the database does not answer")
        reason = type(getattr(error, "orig", None) or error).__name__
        return {"status": "error", "database": reason}, 503
    return {"status": "ok", "database": "ok"}
