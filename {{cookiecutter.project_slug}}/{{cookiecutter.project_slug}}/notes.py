"""The notes page: a form that saves a note and the list of saved notes."""

import re
import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for

from .database import db
from .models import Note

bp = Blueprint("notes", __name__, url_prefix="/notes")

MAX_NOTE_LENGTH = 500
NEWEST_NOTES_SHOWN = 100
# Control characters other than tab and line breaks: PostgreSQL cannot store NUL, and none belongs in a note.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def csrf_token():
    """Return this session's CSRF token, making one on first use."""
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def check_csrf_token():
    """Refuse a form that does not carry this session's token (400)."""
    expected = session.get("csrf_token", "")
    sent = request.form.get("csrf_token", "")
    # Compared as bytes, in constant time: compare_digest rejects non-ASCII text.
    if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
        abort(400, "The form expired or did not come from this site; reload the page and retry.")


def problem_with(body):
    """Why a note cannot be saved as it is, or None."""
    if not body:
        return "A note needs some text."
    if len(body) > MAX_NOTE_LENGTH:
        return f"A note holds at most {MAX_NOTE_LENGTH} characters."
    if CONTROL_CHARACTERS.search(body):
        return "A note cannot contain control characters."
    return None


def render_page(error=None, body="", status=200):
    """Render the form and the newest notes."""
    notes = db.session.scalars(
        db.select(Note).order_by(Note.created_at.desc(), Note.id.desc()).limit(NEWEST_NOTES_SHOWN)
    )
    page = render_template(
        "notes.html",
        notes=notes,
        error=error,
        body=body,
        max_length=MAX_NOTE_LENGTH,
        csrf_token=csrf_token(),
    )
    return page, status


@bp.get("/")
def index():
    """Show the form and the saved notes."""
    return render_page()


@bp.post("/")
def create():
    """Save a note, then redirect so that reloading the page does not post it again."""
    check_csrf_token()
    body = request.form.get("body", "").strip()
    problem = problem_with(body)
    if problem:
        # The form shows the text again, without the characters it refused.
        return render_page(problem, CONTROL_CHARACTERS.sub("", body), 400)
    db.session.add(Note(body=body))
    db.session.commit()
    flash("Note saved.")
    return redirect(url_for("notes.index"))
