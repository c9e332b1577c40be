"""Every combination of the stack choices, split into supported and refused."""

import itertools

AXES = {
    "wsgi_server": ("gunicorn", "uwsgi", "mod_wsgi"),
    "web_server": ("nginx", "apache", "none"),
    "process_manager": ("systemd", "supervisord"),
    "os_family": ("debian", "rhel"),
    "database": ("sqlite", "postgresql", "mysql"),
}
SHORT = {"wsgi_server": "wsgi", "web_server": "web", "process_manager": "pm", "os_family": "os", "database": "db"}


def refusal(answers):
    """The answer a refused combination is refused for, or None if it is supported."""
    if answers["wsgi_server"] == "mod_wsgi" and answers["web_server"] != "apache":
        return "web_server"
    if answers["wsgi_server"] == "mod_wsgi" and answers["process_manager"] != "systemd":
        return "process_manager"
    return None


def all_combinations():
    """Every stack a user can pick, as answer dicts."""
    return [dict(zip(AXES, values, strict=True)) for values in itertools.product(*AXES.values())]


def stack_id(answers):
    """A readable test id such as wsgi:uwsgi-web:nginx-pm:systemd-os:rhel-db:sqlite."""
    words = "-".join(f"{SHORT[key]}:{answers[key]}" for key in AXES if key in answers)
    return "rootless-" + words if answers.get("rootless") else words


SUPPORTED_COMBINATIONS = [c for c in all_combinations() if refusal(c) is None]
UNSUPPORTED_COMBINATIONS = [c for c in all_combinations() if refusal(c) is not None]
# A rootless install: no front server of its own, the user's own supervisord, in the user's home.
ROOTLESS_COMBINATIONS = [
    {
        "rootless": True,
        "wsgi_server": wsgi,
        "web_server": "none",
        "process_manager": "supervisord",
        "os_family": os_family,
        "database": database,
        "install_dir": "/home/deploy/flask_stack_app",
    }
    for wsgi in ("gunicorn", "uwsgi")
    for os_family in ("debian", "rhel")
    for database in ("sqlite", "postgresql", "mysql")
]
