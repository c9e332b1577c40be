"""Every WSGI server x database locks its dependencies with hashes, and the lock installs as the server does."""

import subprocess
import sys

import pytest
from helpers import TEMPLATE, bake, require_tool

LOCKS = TEMPLATE / "templates" / "lock"
FRONT = {"gunicorn": "nginx", "uwsgi": "nginx", "mod_wsgi": "apache"}
CASES = [(wsgi, database) for wsgi in FRONT for database in ("sqlite", "postgresql", "mysql")]
TIMEOUT = 900


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs)


def pinned(text):
    """{name: version} of a requirements file."""
    return dict(
        line.split(" ")[0].split("==") for line in text.splitlines() if "==" in line and not line.startswith(("#", " "))
    )


@pytest.mark.parametrize(("wsgi", "database"), CASES, ids=[f"{w}-{d}" for w, d in CASES])
def test_lock_files_agree_with_each_other(cookies, wsgi, database):
    """requirements-dev.txt keeps requirements.txt's versions: the tests run what the server runs."""
    project = bake(cookies, wsgi_server=wsgi, web_server=FRONT[wsgi], database=database)
    server, dev = (
        pinned((project / "requirements.txt").read_text()),
        pinned((project / "requirements-dev.txt").read_text()),
    )
    assert server[wsgi.replace("_", "-")]
    assert {"pytest", "ruff", "flask"} <= dev.keys()
    assert {name: dev[name] for name in server.keys() & dev.keys()} == {
        name: server[name] for name in server.keys() & dev.keys()
    }
    assert {"psycopg": "postgresql", "pymysql": "mysql"}.get(
        next(iter({"psycopg", "pymysql"} & server.keys()), None)
    ) == (database if database != "sqlite" else None)


@pytest.mark.parametrize(("wsgi", "database"), CASES, ids=[f"{w}-{d}" for w, d in CASES])
def test_server_lock_installs_with_hashes(cookies, tmp_path, wsgi, database):
    """The deploy step: the locked versions, hash-checked, then the project without resolving again."""
    if wsgi == "mod_wsgi":
        require_tool("apxs", "mod_wsgi builds against Apache's development files")
    project = bake(cookies, wsgi_server=wsgi, web_server=FRONT[wsgi], database=database, project_slug="shop")
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
    pip = [str(tmp_path / "venv" / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    for command in (
        [*pip, "install", "--quiet", "--require-hashes", "-r", "requirements.txt"],
        [*pip, "install", "--quiet", "--no-deps", "."],
        [*pip, "check"],
    ):
        result = run(command, cwd=project)
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    python = str(tmp_path / "venv" / "bin" / "python")
    # The app imports, and the app server is the locked version.
    distribution = wsgi.replace("_", "-")
    code = f"import shop, importlib.metadata as m; print(m.version({distribution!r}))"
    imported = run([python, "-c", code], cwd=tmp_path)
    assert imported.stdout.strip() == pinned((project / "requirements.txt").read_text())[distribution], imported.stderr
    # A hash that does not match is refused: the lock, not the index, decides what is installed.
    lines = (project / "requirements.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("flask=="))
    (tmp_path / "tampered.txt").write_text(f"{lines[start]}\n    --hash=sha256:{'0' * 64}\n")
    tampered = run(
        [*pip, "install", "--no-deps", "--force-reinstall", "--require-hashes", "-r", str(tmp_path / "tampered.txt")]
    )
    assert tampered.returncode != 0
    assert "DO NOT MATCH THE HASHES" in tampered.stderr
