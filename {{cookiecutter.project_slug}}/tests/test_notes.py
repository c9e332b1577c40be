"""The notes page: form, CSRF protection, validation, storage."""

import re

import pytest

from {{ cookiecutter.project_slug }}.database import db
from {{ cookiecutter.project_slug }}.models import Note


def csrf_token(client):
    """Open the notes page and return the token its form carries."""
    response = client.get("/notes/")
    return re.search(r'name="csrf_token" value="([^"]+)"', response.text).group(1)


def test_form(client):
    """The page shows the form with a CSRF token and an empty list."""
    response = client.get("/notes/")
    assert response.status_code == 200
    assert '<form method="post"' in response.text
    assert csrf_token(client)
    assert "No notes yet." in response.text


def test_create(client, app):
    """A posted note is saved, then shown after the redirect, newest first."""
    for body in ("first note", "Grüße, 日本語 & <b>emoji</b> 🚀"):
        response = client.post("/notes/", data={"body": body, "csrf_token": csrf_token(client)})
        assert response.status_code == 302
        assert response.headers["Location"] == "/notes/"
    page = client.get("/notes/").text
    assert "Note saved." in page
    assert page.index("Grüße, 日本語 &amp; &lt;b&gt;emoji&lt;/b&gt; 🚀") < page.index("first note")
    with app.app_context():
        bodies = db.session.scalars(db.select(Note.body).order_by(Note.id)).all()
    assert bodies == ["first note", "Grüße, 日本語 & <b>emoji</b> 🚀"]


@pytest.mark.parametrize("token", [None, "", "forged", "fälschung"])
def test_csrf(client, app, token):
    """A post without this session's token is refused with 400 and saves nothing."""
    csrf_token(client)
    data = {"body": "sneaky"} if token is None else {"body": "sneaky", "csrf_token": token}
    assert client.post("/notes/", data=data).status_code == 400
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Note.id))) == 0


def test_csrf_needs_a_session(app):
    """A token is worthless without the session it was made for."""
    token = csrf_token(app.test_client())
    response = app.test_client().post("/notes/", data={"body": "x", "csrf_token": token})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [("", "needs some text"), ("   \n ", "needs some text"), ("x" * 501, "at most 500")],
)
def test_validation(client, app, body, message):
    """An empty or too long note is refused with 400, the message, and the text kept."""
    response = client.post("/notes/", data={"body": body, "csrf_token": csrf_token(client)})
    assert response.status_code == 400
    assert message in response.text
    assert body.strip() in response.text
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Note.id))) == 0


def test_longest_note(client, app):
    """A note of exactly 500 characters fits."""
    body = "é" * 500
    response = client.post("/notes/", data={"body": body, "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(db.select(Note.body)) == body


@pytest.mark.parametrize("body", ["before\x00after", "bell\x07", "escape\x1b[31m"])
def test_control_characters(client, app, body):
    """A NUL byte (which PostgreSQL cannot store) or another control character is a 400, and nothing is saved."""
    response = client.post("/notes/", data={"body": body, "csrf_token": csrf_token(client)})
    assert response.status_code == 400
    assert "control characters" in response.text
    assert "\x00" not in response.text
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Note.id))) == 0


def test_tabs_and_line_breaks(client, app):
    """Tabs and line breaks are text: they are kept."""
    body = "one\ttwo\r\nthree"
    response = client.post("/notes/", data={"body": body, "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(db.select(Note.body)) == body
