"""Every combination of the stack choices, split into supported and refused, and the facts of a bake.

The choice lists and the refusal rules are the template's own: the table of stack facts in
cookiecutter.json ("_stack"), read here and checked by the pre-generation hook's check_combination.
"""

import itertools
import json
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
STACK = json.loads((TEMPLATE / "cookiecutter.json").read_text())["_stack"]
AXES = {key: tuple(entries) for key, entries in STACK["choices"].items()}
SHORT = {
    "wsgi_server": "wsgi",
    "web_server": "web",
    "tls": "tls",
    "process_manager": "pm",
    "os_family": "os",
    "database": "db",
}


def _load_pre_gen_hook():
    import importlib.util

    spec = importlib.util.spec_from_file_location("pre_gen_project", TEMPLATE / "hooks" / "pre_gen_project.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_PRE_GEN = _load_pre_gen_hook()


def refusal(answers):
    """The answer a refused combination is refused for, or None if it is supported."""
    port = STACK["choices"]["web_server"][answers["web_server"]]["port"]  # http_port's default
    problems = _PRE_GEN.check_combination({"rootless": False, "http_port": port, **answers, "_stack": STACK})
    return problems[0][0] if problems else None


def context(**answers):
    """The answers and derived values (__socket, __front_group, ...) cookiecutter renders for a bake
    with these answers: what the templates and hooks of that bake read, computed by cookiecutter."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    answers.setdefault("create_venv", False)
    if answers.get("web_server") == "none":
        answers.setdefault("tls", "none")  # the only TLS answer a stack without a front server of ours takes
    rendered = generate_context(str(TEMPLATE / "cookiecutter.json"), extra_context=answers)
    return dict(prompt_for_config(rendered, no_input=True))


def all_combinations():
    """Every stack a user can pick, as answer dicts."""
    return [dict(zip(AXES, values, strict=True)) for values in itertools.product(*AXES.values())]


def stack_id(answers):
    """A readable test id such as wsgi:uwsgi-web:nginx-pm:systemd-os:rhel-db:sqlite."""
    words = "-".join(f"{SHORT[key]}:{answers[key]}" for key in AXES if key in answers)
    return "rootless-" + words if answers.get("rootless") else words


SUPPORTED_COMBINATIONS = [c for c in all_combinations() if refusal(c) is None]
UNSUPPORTED_COMBINATIONS = [c for c in all_combinations() if refusal(c) is not None]


def default_tls(answers):
    """The TLS answer a stack gets without one: letsencrypt with a front server of ours, none without."""
    return "none" if answers["web_server"] == "none" else "letsencrypt"


def tls_sample(combinations):
    """Each stack with the TLS answer it gets by default (letsencrypt with a front server of ours, none without),
    and the other TLS answers with SQLite only: TLS changes the front server's files and the README, not what the
    database changes."""
    default = {"none": "none"}
    return [
        c for c in combinations if c["tls"] == default.get(c["web_server"], "letsencrypt") or c["database"] == "sqlite"
    ]


# A rootless install: what the table requires of it (no front server of its own, the user's own
# supervisord), in the user's home.
ROOTLESS_COMBINATIONS = [
    {"rootless": True, **c, "install_dir": "/home/deploy/flask_stack_app"}
    for c in all_combinations()
    if refusal({**c, "rootless": True}) is None
]
