"""Each generated stack deployed on this machine and served through its real servers.

For each case: bake with the cookiecutter CLI, follow the README's deploy
steps (user, code in install_dir, venv, env file, database, init-db), run the
generated app-server and process-manager configs and the generated front
server config unchanged, check the site through the front server, check what
the app server listens on, then stop it with its own stop signal.
"""

import pytest

from .cases import CASES
from .harness import Deployment
from .system import free_port

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_stack_serves_through_its_front_server(case, machine, wheelhouse, cleanup, timing):
    """The generated stack serves pages, static files, a form backed by the
    database and its health check under the URL prefix, refuses unknown hosts,
    keeps the app server off public addresses, and stops cleanly in time."""
    free_port(case.port)
    if case.web_server == "none":
        free_port(case.proxy_port)
    deployment = Deployment(case, cleanup, wheelhouse, timing)
    with deployment.reporting():
        deployment.deploy()
        deployment.start_app()
        deployment.start_front()
        with deployment.step("checks"):
            deployment.check_index()
            deployment.check_links()
            deployment.check_stylesheet()
            deployment.check_form()
            deployment.check_health()
            deployment.check_unknown_host()
            deployment.check_listening()
        deployment.check_stop()
    print(f"{case.id}: " + "; ".join(deployment.checked))
