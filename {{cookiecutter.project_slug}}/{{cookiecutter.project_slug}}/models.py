"""The tables, as SQLAlchemy models."""

from datetime import datetime, timezone

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .database import db


def utcnow():
    """Return the current time as naive UTC, which every database stores unchanged."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Note(db.Model):
    """A short text a visitor saved through the notes form."""

    __tablename__ = "note"

    id: Mapped[int] = mapped_column(primary_key=True)
    # An explicit length: MySQL has no unbounded VARCHAR.
    body: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
