"""Default settings; instance/config.py and FLASK_* environment variables override them."""

import secrets

APP_NAME = {{ cookiecutter.__project_name_py }}

# From the environment file in production (FLASK_SECRET_KEY); see require_secret_key().
SECRET_KEY = None
# Bytes of key production accepts: session signatures are only as strong as the key.
MIN_SECRET_KEY_BYTES = 32

# A relative SQLite path lands in the instance folder; production sets
# FLASK_SQLALCHEMY_DATABASE_URI in the environment file.
SQLALCHEMY_DATABASE_URI = "sqlite:///{{ cookiecutter.project_slug }}.sqlite3"
# Test each pooled connection before use, so a restarted database costs no failed request.
SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
# A sick database costs a request a bounded wait, then an honest 503 (errors.py); database.py
# applies both to every connection. Together they stay far below the app server's 30 s request timeout.
# Seconds to open a connection: a healthy server answers in milliseconds, 3 s allows a lost SYN's retry.
DATABASE_CONNECT_TIMEOUT = 3
# Seconds one statement, or one wait for a lock, may take: this app's queries take milliseconds.
# A migration that needs longer: run init-db with FLASK_DATABASE_STATEMENT_TIMEOUT=600.
DATABASE_STATEMENT_TIMEOUT = 5

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
    """Refuse to start without a secret key, or with a short one, except under tests and the debug server."""
    if app.testing or app.debug:
        return
    env_file = {{ cookiecutter.__env_file | tojson }}
    key = app.config["SECRET_KEY"]
    if not key:
        raise RuntimeError(
            "SECRET_KEY is not set, and production refuses to start without it: "
            f"set FLASK_SECRET_KEY in {env_file} (see README.md)."
        )
    length = len(key.encode() if isinstance(key, str) else key)
    if length < MIN_SECRET_KEY_BYTES:
        raise RuntimeError(
            f"SECRET_KEY has {length} bytes, and production refuses fewer than {MIN_SECRET_KEY_BYTES}: "
            f"set FLASK_SECRET_KEY in {env_file} to the output of "
            "`python3 -c 'import secrets; print(secrets.token_hex(32))'`."
        )
