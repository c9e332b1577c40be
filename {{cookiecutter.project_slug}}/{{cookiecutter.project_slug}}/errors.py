"""Answers for a database that is down, frozen or locked: a short 503, never a 500 or a hung request."""

import contextlib

from flask import current_app, render_template
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from .database import db

# What an unavailable database raises: refused or lost connections, timeouts, "database is locked",
# a full pool. A programming error (a bad query, a broken constraint) stays a 500: it is a bug.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)
# Seconds a client should wait before retrying: about the database timeouts of config.py.
RETRY_AFTER = 10


def database_unavailable(error):
    """Log the cause, drop the failed transaction and say 503 with a short page."""
    current_app.logger.error("The database is unavailable: %s", error)
    # A lost connection may fail its rollback too; the pool replaces it either way.
    with contextlib.suppress(SQLAlchemyError):
        db.session.rollback()
    page = render_template("unavailable.html")
    return page, 503, {"Retry-After": str(RETRY_AFTER)}


def init_app(app):
    """Register the 503 answer for every error of an unavailable database."""
    for error in UNAVAILABLE:
        app.register_error_handler(error, database_unavailable)
