"""Hooks of every tier: pytest-cookies bakes this template, and under CI=true an unlisted skip fails."""

from helpers import TEMPLATE
from hosts.fixtures import host_image, host_key, hosts, package_mirror  # noqa: F401 (test hosts, one per session)
from skip_policy import pytest_runtest_makereport  # noqa: F401 (a hook, registered by its name here)


def pytest_configure(config):
    # pytest-cookies bakes its --template, by default the directory pytest starts in: make it this template.
    config.option.template = str(TEMPLATE)
