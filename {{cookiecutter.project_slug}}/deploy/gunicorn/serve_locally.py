"""Run gunicorn on this machine as production runs it: the same settings, bound to 127.0.0.1.

    .venv/bin/pip install --require-hashes -r requirements.txt   # once: gunicorn, as on the server
    .venv/bin/python deploy/gunicorn/serve_locally.py            # http://127.0.0.1:8000/ (or give a port)

A copy of gunicorn.conf.py, instance/gunicorn-local.conf.py, differs in two lines only: chdir is this
checkout, bind is 127.0.0.1 (added where systemd's socket unit binds in production). The app's settings come from the environment as on the server: FLASK_SECRET_KEY (a throw-away one if unset) and the database URL
(SQLite in instance/ if unset); 127.0.0.1 and localhost join the trusted hosts.
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
CONFIG = ROOT / "deploy" / "gunicorn" / "gunicorn.conf.py"


def local_environment():
    """The production settings, with what only a local run needs added."""
    env = dict(os.environ, FLASK_SKIP_DOTENV="1")
    env.setdefault("FLASK_SECRET_KEY", secrets.token_hex(32))
    env.setdefault("FLASK_TRUSTED_HOSTS", json.dumps([DOMAIN, "127.0.0.1", "localhost"]))
    return env


def local_config(text, port):
    """The production settings with the local address and checkout."""
    bind = f'bind = ["127.0.0.1:{port}"]'
    if re.search(r"^bind = ", text, flags=re.MULTILINE):
        text = re.sub(r"^bind = .*$", bind, text, flags=re.MULTILINE)
    else:
        # Under systemd the socket unit binds, not gunicorn: give the local run its address.
        text += f"\n{bind}\n"
    return re.sub(r"^chdir = .*$", f"chdir = {str(ROOT)!r}", text, flags=re.MULTILINE)


def main():
    port = sys.argv[1] if len(sys.argv) > 1 else "8000"
    env = local_environment()
    bin_dir = Path(sys.executable).parent
    # The schema first, as the deploy steps do with init-db.
    flask = [str(bin_dir / "flask"), "--app", {{ cookiecutter.project_slug | tojson }}, "init-db"]
    subprocess.run(flask, cwd=ROOT, env=env, check=True)
    config = ROOT / "instance" / "gunicorn-local.conf.py"
    config.parent.mkdir(exist_ok=True)
    config.write_text(local_config(CONFIG.read_text(), port))
    command = [str(bin_dir / "gunicorn"), "--config", str(config)]
    print("$ " + " ".join(command), flush=True)
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
