"""Finish the generated project: drop what the stack does not use, write its
secrets, create its virtualenv.

Every step is idempotent. When cruft renders the template (create, update,
diff), no virtualenv is made and nothing is installed, so an update stays fast
and touches no network; the .env it writes there is skipped by cruft.
"""

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

# Values reach Python as JSON so that quotes, backslashes and braces stay data.
ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""


def unused_paths(answers):
    """The deploy folders of the choices not taken, and of those the chosen stack does without."""
    choices = answers["_stack"]["choices"]
    every = {path for entries in choices.values() for entry in entries.values() for path in entry["deploy"]}
    used = {path for key, entries in choices.items() for path in entries[answers[key]]["deploy"]}
    if choices["wsgi_server"][answers["wsgi_server"]]["in_front_server"]:
        # The front server's own unit runs the app: no unit of ours.
        used.discard("deploy/systemd")
    if not answers["__socket"]:
        # tmpfiles.d only makes the socket's directory (under systemd, RuntimeDirectory= does).
        used.discard("deploy/tmpfiles")
    return sorted(every - used)


def remove_paths(root, paths):
    """Delete the given files or folders below root, if present."""
    for relative in paths:
        path = root / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def env_file_text(answers):
    """The production settings with freshly generated secrets."""
    slug, database = answers["project_slug"], answers["database"]
    password = secrets.token_hex(16)
    url_shape = answers["_stack"]["choices"]["database"][database]["url"]
    url = url_shape.format(slug=slug, password=password, state_dir=answers["__state_dir"])
    lines = [
        f"# Production settings of {slug}. Secret: never commit it.",
        f"# Install it as {answers['__env_file']} (see README.md).",
        f"FLASK_SECRET_KEY={secrets.token_hex(32)}",
        f"FLASK_SQLALCHEMY_DATABASE_URI={url}",
    ]
    if database != "sqlite":
        lines.append(f"DB_PASSWORD={password}")
    return "\n".join(lines) + "\n"


def write_env_file(path, answers):
    """Write .env (mode 0600) unless it exists: secrets are made once."""
    if path.exists():
        print(f"Keeping the existing {path.name}")
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as env_file:
        env_file.write(env_file_text(answers))
    extra = " and database password" if answers["database"] != "sqlite" else ""
    if rendered_by_cruft(answers):
        # cruft update renders twice into scratch copies; the project's own .env is skipped there.
        extra += " (under `cruft update` a scratch copy: your project's .env is kept)"
    print(f"Wrote {path.name} with a new SECRET_KEY{extra}")


def venv_commands(python=sys.executable):
    """The commands that create .venv and install the project for development."""
    if shutil.which("uv"):
        return [
            ["uv", "venv", "--quiet", "--python", python, ".venv"],
            ["uv", "pip", "install", "--quiet", "--python", ".venv/bin/python", "-e", ".[dev]"],
        ]
    return [[python, "-m", "venv", ".venv"], [".venv/bin/python", "-m", "pip", "install", "--quiet", "-e", ".[dev]"]]


def create_venv(root):
    """Create .venv and install the project; on failure say how to retry."""
    if (root / ".venv" / "bin" / "python").exists():
        print("Keeping the existing .venv")
        return True
    commands = venv_commands()
    for command in commands:
        print("$ " + shlex.join(command), flush=True)
        if subprocess.run(command, cwd=root, check=False).returncode != 0:
            print(
                f"\nCreating the virtualenv failed; the project is in {root}.\n"
                f"Retry with:\n  cd {shlex.quote(str(root))}\n" + "".join(f"  {shlex.join(c)}\n" for c in commands),
                file=sys.stderr,
            )
            return False
    return True


def rendered_by_cruft(answers):
    """cruft records the template commit; plain cookiecutter does not."""
    return "_commit" in answers


def main():
    answers = json.loads(ANSWERS_JSON)
    root = Path.cwd()
    remove_paths(root, unused_paths(answers))
    write_env_file(root / ".env", answers)
    if not answers["create_venv"]:
        return
    if rendered_by_cruft(answers):
        print("Rendered by cruft: not creating .venv (see README.md, 'Run it locally').")
        return
    create_venv(root)


if __name__ == "__main__":
    main()
