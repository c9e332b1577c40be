"""Every WSGI server × database bakes a project whose own ruff and pytest pass on that database."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import stack_id
from helpers import bake, require_tool, unavailable

# One supported front server, process manager and OS per pair, varied so that the nine
# bakes also cover ProxyFix on and off, wsgi.py with and without python-dotenv, both OSes.
STACKS = {
    ("gunicorn", "sqlite"): ("nginx", "systemd", "debian"),
    ("gunicorn", "postgresql"): ("none", "supervisord", "rhel"),
    ("gunicorn", "mysql"): ("apache", "systemd", "debian"),
    ("uwsgi", "sqlite"): ("nginx", "systemd", "rhel"),
    ("uwsgi", "postgresql"): ("nginx", "supervisord", "debian"),
    ("uwsgi", "mysql"): ("none", "supervisord", "rhel"),
    ("mod_wsgi", "sqlite"): ("apache", "systemd", "rhel"),
    ("mod_wsgi", "postgresql"): ("apache", "systemd", "rhel"),
    ("mod_wsgi", "mysql"): ("apache", "systemd", "debian"),
}
CASES = [
    {"wsgi_server": wsgi, "database": database, "web_server": web, "process_manager": manager, "os_family": os_family}
    for (wsgi, database), (web, manager, os_family) in STACKS.items()
]
# A name full of characters that break naive quoting in Python, TOML and HTML.
PROJECT_NAME = 'Café "Q" {x} O\'Neil\\'
# The baked suite starts clean: none of the caller's settings leak into it.
UNSET = ("DATABASE_URL", "PYTEST_ADDOPTS", "PYTHONPATH", "VIRTUAL_ENV")
TIMEOUT = 600


def run(command, **kwargs):
    """Run a command, capturing its output as text."""
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs)


def psql(sql):
    """Run SQL as the postgres superuser on 127.0.0.1."""
    return run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc", sql])


def mariadb(sql):
    """Run SQL as the MariaDB/MySQL root user on 127.0.0.1."""
    return run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-N", "-e", sql])


def postgresql_database(name, password):
    """Create a role and a database it owns; return the URL and a function that drops both."""
    require_tool("psql", "the PostgreSQL client creates the test database")
    probe = psql("SELECT 1")
    if probe.returncode != 0:
        unavailable(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {probe.stderr.strip()}")
    created = psql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    assert created.returncode == 0, created.stderr
    created = psql(f"CREATE DATABASE {name} OWNER {name} ENCODING 'UTF8'")
    assert created.returncode == 0, created.stderr

    def tables():
        result = psql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        return result.stdout.split()

    def drop():
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        psql(f"DROP ROLE IF EXISTS {name}")

    return f"postgresql+psycopg://{name}:{password}@127.0.0.1:5432/{name}", tables, drop


def mysql_database(name, password):
    """Create a database and a user allowed on it; return the URL and a function that drops both."""
    require_tool("mariadb", "the MariaDB client creates the test database")
    probe = mariadb("SELECT 1")
    if probe.returncode != 0:
        unavailable(f"MariaDB/MySQL at 127.0.0.1:3306 is unreachable: {probe.stderr.strip()}")
    created = mariadb(
        f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
        f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'; "
        f"GRANT ALL PRIVILEGES ON {name}.* TO '{name}'@'%';"
    )
    assert created.returncode == 0, created.stderr

    def tables():
        result = mariadb(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{name}'")
        return result.stdout.split()

    def drop():
        mariadb(f"DROP DATABASE IF EXISTS {name}; DROP USER IF EXISTS '{name}'@'%';")

    return f"mysql+pymysql://{name}:{password}@127.0.0.1:3306/{name}?charset=utf8mb4", tables, drop


@pytest.fixture
def database(request):
    """A fresh database on the real server for PostgreSQL and MySQL: (URL, tables()), else None."""
    kind = request.param
    if kind == "sqlite":
        yield None
        return
    name = f"fs_test_{secrets.token_hex(4)}"
    make = postgresql_database if kind == "postgresql" else mysql_database
    url, tables, drop = make(name, secrets.token_hex(16))
    try:
        yield url, tables
    finally:
        drop()


@pytest.fixture
def uv_on_path(monkeypatch):
    """Put the uv next to this Python first on PATH, so the post-generation hook uses it."""
    bin_dir = Path(sys.executable).parent
    if (bin_dir / "uv").exists():
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")


def suite_environment(database_url):
    """The environment the baked project's checks run in."""
    env = {key: value for key, value in os.environ.items() if key not in UNSET and not key.startswith("FLASK_")}
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@pytest.mark.parametrize(
    ("answers", "database"),
    [
        pytest.param(case, case["database"], id=stack_id({k: case[k] for k in ("wsgi_server", "database")}))
        for case in CASES
    ],
    indirect=["database"],
)
def test_generated_suite_passes(cookies, tmp_path, uv_on_path, answers, database):
    """The baked project installs, lints clean and passes its own tests on its database."""
    slug = f"app_{answers['wsgi_server']}_{answers['database']}"
    project = bake(cookies, create_venv=True, project_name=PROJECT_NAME, project_slug=slug, **answers)
    python = project / ".venv" / "bin" / "python"
    assert python.exists(), f"the post-generation hook did not create {python}"
    env = suite_environment(database[0] if database else None)

    lint = run([str(project / ".venv" / "bin" / "ruff"), "check", "."], cwd=project, env=env)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    # A private --basetemp: pytest's shared numbered temp dirs race with other pytest runs.
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'suite-tmp'}"]
    tests = run(command, cwd=project, env=env)
    output = tests.stdout + tests.stderr
    assert tests.returncode == 0, output
    summary = output.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 0, summary
    assert not re.search(r"\d+ (failed|errors?)\b", summary), summary
    assert "skipped" not in summary, summary
    if database:
        # The suite cleans up after itself, so it can run on a shared database.
        assert database[1]() == []
