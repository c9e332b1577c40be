"""Default settings; instance/config.py and FLASK_* environment variables override them."""

import secrets

APP_NAME = {{ cookiecutter.__project_name_py }}

# From the environment file in production (FLASK_SECRET_KEY); see require_secret_key().
SECRET_KEY = None

# A relative SQLite path lands in the instance folder; production sets
# FLASK_SQLALCHEMY_DATABASE_URI in the environment file.
SQLALCHEMY_DATABASE_URI = "sqlite:///{{ cookiecutter.project_slug }}.sqlite3"
# Test each pooled connection before use, so a restarted database costs no failed request.
SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}

# A larger request body gets 413 Request Entity Too Large.
MAX_CONTENT_LENGTH = 16 * 1024 * 1024
# Requests for any other host get 400, whatever Host header a client invents.
TRUSTED_HOSTS = [{{ cookiecutter.domain_name | tojson }}]

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
{% if cookiecutter.__https %}
# The site is HTTPS only ({{ cookiecutter._stack.choices.web_server[cookiecutter.web_server].name }} redirects plain HTTP): the session cookie never
# travels in the clear, and links built outside a request say https.
{% else %}
# Clients speak HTTPS to the {{ 'host\'s proxy' if cookiecutter.web_server == 'none' else 'load balancer' }} in front, which ends TLS: the session cookie
# never travels in the clear, and links built outside a request say https.
{% endif %}
SESSION_COOKIE_SECURE = True
PREFERRED_URL_SCHEME = "https"


def apply_debug_server_defaults(app):
    """Let the debug server answer to local names and invent a session key; production is left alone."""
    if not app.debug:
        return
    # The development server is called by a local name, not the site's domain.
    app.config["TRUSTED_HOSTS"] = [*app.config["TRUSTED_HOSTS"], "localhost", "127.0.0.1"]
    # It speaks plain HTTP, where a browser drops a Secure cookie.
    app.config["SESSION_COOKIE_SECURE"] = False
    app.config["PREFERRED_URL_SCHEME"] = "http"
    if not app.config["SECRET_KEY"]:
        # Sessions end when the server restarts, which is fine locally.
        app.config["SECRET_KEY"] = secrets.token_hex(32)


def require_secret_key(app):
    """Refuse to start without a secret key, except under tests."""
    if not app.config["SECRET_KEY"] and not app.testing:
        env_file = {{ cookiecutter.__env_file | tojson }}
        raise RuntimeError(
            "SECRET_KEY is not set, and production refuses to start without it: "
            f"set FLASK_SECRET_KEY in {env_file} (see README.md)."
        )
