"""The home page."""

from flask import Blueprint, render_template

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    """Show the home page."""
    return render_template("index.html")
