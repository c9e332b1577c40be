"""Run uWSGI on this machine as production runs it: the same ini, serving HTTP on 127.0.0.1.

    .venv/bin/pip install --require-hashes -r requirements.txt   # once: uWSGI, as on the server
    .venv/bin/python deploy/uwsgi/serve_locally.py               # http://127.0.0.1:8000/ (or give a port)

A copy of the ini, instance/uwsgi-local.ini, differs in three lines only: the socket becomes HTTP on
127.0.0.1, chdir this checkout, virtualenv this .venv. The settings come from the environment as on
the server: FLASK_SECRET_KEY (a throw-away one if unset) and the database URL (SQLite in instance/ if
unset); 127.0.0.1 and localhost join the trusted hosts.
"""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = {{ cookiecutter.domain_name | tojson }}
INI = ROOT / "deploy" / "uwsgi" / {{ (cookiecutter.project_slug ~ ".ini") | tojson }}


def local_environment():
    """The production settings, with what only a local run needs added."""
    env = dict(os.environ, FLASK_SKIP_DOTENV="1")
    env.setdefault("FLASK_SECRET_KEY", secrets.token_hex(32))
    env.setdefault("FLASK_TRUSTED_HOSTS", json.dumps([DOMAIN, "127.0.0.1", "localhost"]))
    return env


def local_ini(text, port):
    """The production ini with the local socket, checkout and virtualenv."""
    lines = {
        r"^(http-)?socket = .*$": f"http-socket = 127.0.0.1:{port}",
        r"^chdir = .*$": f"chdir = {ROOT}",
        r"^virtualenv = .*$": f"virtualenv = {sys.prefix}",
    }
    for pattern, line in lines.items():
        text = re.sub(pattern, line, text, flags=re.MULTILINE)
    return text


def main():
    port = sys.argv[1] if len(sys.argv) > 1 else "8000"
    env = local_environment()
    bin_dir = Path(sys.executable).parent
    # The schema first, as the deploy steps do with init-db.
    flask = [str(bin_dir / "flask"), "--app", {{ cookiecutter.project_slug | tojson }}, "init-db"]
    subprocess.run(flask, cwd=ROOT, env=env, check=True)
    ini = ROOT / "instance" / "uwsgi-local.ini"
    ini.parent.mkdir(exist_ok=True)
    ini.write_text(local_ini(INI.read_text(), port))
    command = [str(bin_dir / "uwsgi"), "--ini", str(ini)]
    print("$ " + " ".join(command), flush=True)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
