"""Fixtures of the test-host harness (tests/hosts/fixtures.py)."""

from .fixtures import host_image, host_key, hosts, package_mirror, summary  # noqa: F401


def pytest_terminal_summary(terminalreporter):
    summary(terminalreporter)
