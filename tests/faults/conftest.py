"""The fault tier: real servers on booted test hosts, a bounded load, every failed request counted."""

import pytest

from .results import ROWS, table


def pytest_collection_modifyitems(items):
    for item in items:
        if "/tests/faults/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


def pytest_terminal_summary(terminalreporter):
    if ROWS:
        terminalreporter.section("fault tier: failed requests per scenario and stack")
        for line in table(ROWS):
            terminalreporter.write_line(line)
