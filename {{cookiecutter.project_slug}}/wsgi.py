"""WSGI entry point: the app server loads ``app`` (or ``application``) from this module."""
{% if cookiecutter.process_manager == 'supervisord' or cookiecutter.wsgi_server == 'mod_wsgi' %}

from dotenv import load_dotenv

from {{ cookiecutter.project_slug }} import create_app

# {{ 'supervisord' if cookiecutter.process_manager == 'supervisord' else 'mod_wsgi' }} passes no environment file to the app (a systemd unit's EnvironmentFile=
# would), so the production settings are loaded here; variables already set win.
load_dotenv({{ cookiecutter.__env_file | tojson }})
{% else %}

from {{ cookiecutter.project_slug }} import create_app
{% endif %}

app = application = create_app()
