"""The WSGI entry point the app server loads."""

import runpy
from pathlib import Path

from flask import Flask

WSGI_FILE = Path(__file__).resolve().parent.parent / "wsgi.py"


def test_wsgi_exposes_app(monkeypatch):
    """wsgi.py builds the production app as both app and application."""
    monkeypatch.setenv("FLASK_SECRET_KEY", "k" * 32)
    monkeypatch.setenv("FLASK_SQLALCHEMY_DATABASE_URI", "sqlite://")
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    module = runpy.run_path(str(WSGI_FILE))
    assert isinstance(module["app"], Flask)
    assert module["application"] is module["app"]
    assert not module["app"].debug
