"""The test-host harness's summary; its fixtures are in tests/conftest.py, shared with the end-to-end tier."""

from .fixtures import summary


def pytest_terminal_summary(terminalreporter):
    summary(terminalreporter)
