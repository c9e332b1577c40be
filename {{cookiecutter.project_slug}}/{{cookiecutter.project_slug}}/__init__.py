"""The application factory: builds the app from its settings, database and blueprints."""

from flask import Flask

from . import config, database, errors, health, main, notes


def create_app(test_config=None):
    """Create and configure the application."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(config)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env()
    else:
        app.config.from_mapping(test_config)
    config.apply_debug_server_defaults(app)
    config.require_secret_key(app)
    {% if cookiecutter.__http_proxy %}

    # Exactly one HTTP proxy stands in front: trust its X-Forwarded-For/-Proto/-Host, nothing more.
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    {% endif %}

    database.init_app(app)
    errors.init_app(app)
    app.register_blueprint(main.bp)
    app.register_blueprint(notes.bp)
    app.register_blueprint(health.bp)

    if app.debug:
        # The one-command local run starts on an empty database; production migrates only
        # when told to (init-db), never as a side effect of starting.
        with app.app_context():
            database.init_db()
    return app
