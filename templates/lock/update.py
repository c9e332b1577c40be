"""Lock the generated project's dependencies, with hashes, for every WSGI server x database.

Run from the repository root after changing the generated pyproject.toml:

    python templates/lock/update.py

It bakes each pair and runs in it the two `uv pip compile` commands the generated README gives
(requirements.txt first, then requirements-dev.txt constrained to it), and keeps the results
here as <wsgi>-<database>.txt and dev-<wsgi>-<database>.txt, which the project's
requirements.txt and requirements-dev.txt include.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE.parent.parent
WSGI_SERVERS = ("gunicorn", "uwsgi", "mod_wsgi")
DATABASES = ("sqlite", "postgresql", "mysql")
STACKS = {"gunicorn": "nginx", "uwsgi": "nginx", "mod_wsgi": "apache"}


def lock_commands(uv):
    """The commands of the generated README's "Locked dependencies", as argument lists."""
    common = [uv, "pip", "compile", "--quiet", "--universal", "--generate-hashes", "--no-annotate", "pyproject.toml"]
    return [
        [*common, "--extra", "server", "--output-file", "requirements.txt"],
        [*common, "--extra", "dev", "--constraint", "requirements.txt", "--output-file", "requirements-dev.txt"],
    ]


def main():
    uv = shutil.which("uv") or sys.exit("uv is needed: pip install uv")
    for wsgi in WSGI_SERVERS:
        for database in DATABASES:
            with tempfile.TemporaryDirectory() as scratch:
                project = Path(
                    cookiecutter(
                        str(TEMPLATE),
                        no_input=True,
                        output_dir=scratch,
                        extra_context={
                            "wsgi_server": wsgi,
                            "web_server": STACKS[wsgi],
                            "database": database,
                            "create_venv": False,
                        },
                    )
                )
                for name in ("requirements.txt", "requirements-dev.txt"):
                    (project / name).unlink()
                for command in lock_commands(uv):
                    subprocess.run(command, cwd=project, check=True)
                shutil.copy(project / "requirements.txt", HERE / f"{wsgi}-{database}.txt")
                shutil.copy(project / "requirements-dev.txt", HERE / f"dev-{wsgi}-{database}.txt")
            print(f"locked {wsgi} x {database}")


if __name__ == "__main__":
    main()
