"""The end-to-end tier: marker, preconditions, cleanup and the time table."""

import fcntl
import os
import subprocess
import time

import pytest
from helpers import connectable, require, require_tool
from hosts.fixtures import summary

from .deploy import Wheelhouse
from .on_host import RELOAD_RESULTS
from .system import Cleanup

TIMES = []


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: deploys a generated project on this machine (root, real servers)")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


def system_python_include():
    """Where /usr/bin/python3's headers go (python3-dev), whichever Python release the distribution ships."""
    code = "import sysconfig; print(sysconfig.get_paths()['include'])"
    return subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def machine(case):
    """Check that this machine has what the case deploys with."""
    require(os.geteuid() == 0, "the end-to-end tier deploys system-wide and must run as root")
    for tool in ("setpriv", "systemd-analyze", "sqlite3"):
        require_tool(tool, "runs the generated stack")
    require_tool("/usr/bin/python3", "the venv's Python, readable by the service users")
    tools = {"nginx": ["nginx"], "apache": ["apache2"], "none": ["nginx"]}[case.web_server]
    tools += {"supervisord": ["supervisord", "supervisorctl", "systemd-tmpfiles"], "systemd": []}[case.process_manager]
    tools += {"uwsgi": ["gcc"], "mod_wsgi": ["apxs"], "gunicorn": []}[case.wsgi_server]
    tools += {"postgresql": ["psql", "pg_dump"], "mysql": ["mariadb", "mariadb-dump"], "sqlite": []}[case.database]
    for tool in tools:
        require_tool(tool, f"needed by {case.id}")
    if case.wsgi_server == "uwsgi":
        require(
            os.path.exists(f"{system_python_include()}/Python.h"), "python3-dev is not installed (uWSGI builds with it)"
        )
    if case.database == "postgresql":
        require(connectable(("127.0.0.1", 5432)), "PostgreSQL does not answer on 127.0.0.1:5432")
    if case.database == "mysql":
        require(connectable(("127.0.0.1", 3306)), "MariaDB does not answer on 127.0.0.1:3306")


@pytest.fixture(scope="session")
def exclusive():
    """One end-to-end session at a time on this machine: cases share fixed slugs, users and ports."""
    with open("/tmp/flask-stack-e2e.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory, exclusive):
    """uWSGI and mod_wsgi wheels, built once per session by the first case that needs them."""
    return Wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture
def cleanup():
    """Undo everything a case made, in reverse order, even when it failed."""
    stack = Cleanup()
    yield stack
    stack.run()
    assert not stack.errors, "cleanup failed:\n" + "\n".join(stack.errors)


@pytest.fixture
def timing(request, case):
    start = time.monotonic()
    steps = {}
    yield steps
    TIMES.append((case.id, time.monotonic() - start, steps))


def pytest_terminal_summary(terminalreporter):
    summary(terminalreporter)
    if RELOAD_RESULTS:
        terminalreporter.section("systemctl reload under load")
        for case_id, requests, failed in RELOAD_RESULTS:
            terminalreporter.write_line(f"{failed:4d} of {requests:5d} requests failed  {case_id}")
    if not TIMES:
        return
    terminalreporter.section("end-to-end time per case")
    for case_id, seconds, steps in TIMES:
        detail = ", ".join(f"{name} {value:.1f}" for name, value in steps.items())
        terminalreporter.write_line(f"{seconds:6.1f} s  {case_id}  ({detail})")
    terminalreporter.write_line(f"{sum(t for _, t, _ in TIMES):6.1f} s  total")
