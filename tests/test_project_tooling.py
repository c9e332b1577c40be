"""The generated project's everyday tooling: its CI workflow, its pre-commit hooks, its app server run locally."""

import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from combinations import stack_id
from helpers import bake
from test_generated_suite import mysql_database, postgresql_database, suite_environment

DATABASES = ("sqlite", "postgresql", "mysql")
TIMEOUT = 900


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False, **kwargs)


def workflow(project):
    return yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())


@pytest.mark.parametrize("database", DATABASES)
def test_ci_workflow_is_valid(cookies, database):
    """The workflow matches GitHub's schema and zizmor finds nothing (pinned actions, no credentials kept)."""
    project = bake(cookies, database=database)
    path = project / ".github" / "workflows" / "ci.yml"
    bin_dir = Path(sys.executable).parent
    schema = run([str(bin_dir / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)])
    assert schema.returncode == 0, schema.stdout + schema.stderr
    audit = run([str(bin_dir / "zizmor"), "--offline", "--no-progress", str(path)])
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "No findings" in audit.stdout + audit.stderr


@pytest.mark.parametrize("database", DATABASES)
def test_ci_workflow_serves_its_database(cookies, database):
    """A real service container for PostgreSQL and MariaDB, none for SQLite; DATABASE_URL points at it."""
    job = workflow(bake(cookies, database=database, project_slug="shop"))["jobs"]["test"]
    images = [service["image"].split(":")[0] for service in job.get("services", {}).values()]
    assert images == {"sqlite": [], "postgresql": ["postgres"], "mysql": ["mariadb"]}[database]
    url = job.get("env", {}).get("DATABASE_URL", "")
    assert url.startswith(
        {"sqlite": "", "postgresql": "postgresql+psycopg://shop:", "mysql": "mysql+pymysql://shop:"}[database]
    )


def service_credentials(job):
    """(user, password, database) the workflow's service container is started with."""
    (service,) = job["services"].values()
    env = service["env"]
    prefix = "POSTGRES" if "POSTGRES_USER" in env else "MARIADB"
    db_key = "POSTGRES_DB" if prefix == "POSTGRES" else "MARIADB_DATABASE"
    return env[f"{prefix}_USER"], env[f"{prefix}_PASSWORD"], env[db_key]


@pytest.fixture
def python_on_path(tmp_path):
    """A PATH whose `python` is this test's Python, as actions/setup-python provides one."""
    bin_dir = tmp_path / "setup-python"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.mark.parametrize("database", DATABASES)
def test_ci_workflow_steps_pass_against_the_real_database(cookies, python_on_path, database):
    """Every `run:` step of the job, as GitHub runs it (bash -e), against the database the workflow names."""
    slug = f"ci_{secrets.token_hex(4)}"
    project = bake(cookies, database=database, project_slug=slug)
    job = workflow(project)["jobs"]["test"]
    drop = None
    if database != "sqlite":
        user, password, name = service_credentials(job)
        assert user == name == slug
        make = postgresql_database if database == "postgresql" else mysql_database
        _, _, drop = make(slug, password)
    try:
        env = suite_environment(None) | job.get("env", {}) | {"PATH": python_on_path}
        steps = [step for step in job["steps"] if "run" in step]
        assert [step["name"] for step in steps] == ["Install the locked dependencies", "Lint", "Test"]
        for step in steps:
            result = run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=project, env=env)
            assert result.returncode == 0, f"{step['name']}: {result.stdout}{result.stderr}"
        assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout
    finally:
        if drop:
            drop()


def test_pre_commit_runs_ruff_from_the_venv_without_downloads(cookies, tmp_path):
    """`pre-commit run --all-files` passes in a fresh project, and catches a badly formatted file."""
    pre_commit = str(Path(sys.executable).with_name("pre-commit"))
    project = bake(cookies, create_venv=True, project_slug="shop")
    assert (project / ".venv" / "bin" / "ruff").exists()
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    clean = run([pre_commit, "run", "--all-files"], cwd=project, env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "ruff check" in clean.stdout and "ruff format" in clean.stdout
    (project / "shop" / "ugly.py").write_text("x = {  'a':1 }\n")
    subprocess.run(["git", "add", "shop/ugly.py"], cwd=project, check=True)
    dirty = run([pre_commit, "run", "--all-files"], cwd=project, env=env)
    assert dirty.returncode != 0
    assert "1 file would be reformatted" in dirty.stdout
    # The hooks installed nothing: no environment of their own was made.
    assert not list((tmp_path / "pre-commit-home").glob("repo*"))


LOCAL_STACKS = [
    {"wsgi_server": "gunicorn", "web_server": "nginx", "process_manager": "systemd", "url_prefix": "/shop"},
    {"wsgi_server": "gunicorn", "web_server": "none", "process_manager": "supervisord"},
    {"wsgi_server": "uwsgi", "web_server": "nginx", "process_manager": "systemd"},
    {"wsgi_server": "uwsgi", "web_server": "apache", "process_manager": "supervisord", "url_prefix": "/shop"},
]


def readme_blocks(project):
    return re.findall(r"```sh\n(.*?)```", (project / "README.md").read_text(), re.DOTALL)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url):
    """(status, body) of a GET, or None while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None


@pytest.mark.parametrize("answers", LOCAL_STACKS, ids=stack_id)
def test_app_server_serves_locally_with_the_production_config(cookies, answers):
    """The README's "Run it as production does" line: the production config, on 127.0.0.1, answers 200."""
    project = bake(cookies, create_venv=True, project_slug="shop", project_name="Shop <&> Co", **answers)
    (command,) = [block for block in readme_blocks(project) if "serve_locally.py" in block]
    port = free_port()
    env = suite_environment(None)
    # The README's line as printed, with a free port as the script's argument.
    with subprocess.Popen(
        ["bash", "-c", f"{command.strip()} {port}"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as server:
        try:
            prefix = answers.get("url_prefix", "")
            deadline = time.monotonic() + 120
            while (answer := get(f"http://127.0.0.1:{port}{prefix}/")) is None and time.monotonic() < deadline:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.5)
            assert answer is not None, "the app server did not answer"
            status, body = answer
            assert status == 200, body
            assert "Shop &lt;&amp;&gt; Co" in body
            assert get(f"http://127.0.0.1:{port}{prefix}/health") == (200, '{"database":"ok","status":"ok"}\n')
        finally:
            server.terminate()
            output = server.communicate(timeout=60)[0]
    marker = "gunicorn --config" if answers["wsgi_server"] == "gunicorn" else "uwsgi --ini"
    assert marker in output


def test_firewall_step_allows_ssh_by_port_and_stops_at_the_first_failure(cookies):
    """ufw enable never runs after a failed allow, and SSH needs no OpenSSH profile."""
    project = bake(cookies, os_family="debian", web_server="nginx")
    (block,) = [block for block in readme_blocks(project) if "ufw enable" in block]
    lines = [line.strip() for line in block.strip().splitlines()]
    assert lines == ["ufw allow 22/tcp &&", "ufw allow 80/tcp &&", "ufw allow 443/tcp &&", "ufw enable"]
    failing = run(["bash", "-c", block.replace("ufw allow 80/tcp", "false").replace("ufw", "echo ufw")])
    assert failing.returncode != 0
    assert "ufw enable" not in failing.stdout
