"""Each generated stack deployed and served through its real servers.

On a test host (tests/hosts), every Debian stack that runs as root: the
README's deploy section runs verbatim under a real systemd, then the site is
checked through the front server at the host's address, and the service
through systemctl, its journal, /proc of its processes and
systemd-analyze security; it must survive `systemctl reload` under load,
`systemctl restart`, a reboot of the host, and stop in time.

On this machine, the rootless stack (its user's own supervisord, no root, no
systemd) and the RHEL supervisord stack (no RHEL host can be had here): the
README's steps and the generated configs under the real servers.
"""

import pytest

from .cases import CASES
from .harness import Deployment
from .on_host import WORK_ROOT as HOST_WORK_ROOT
from .on_host import HostDeployment
from .system import free_port

pytestmark = pytest.mark.e2e

# supervisord on a host: one stack per front server (the program file differs only by WSGI server).
SUPERVISORD_ON_HOSTS = {
    "wsgi:gunicorn-web:apache-pm:supervisord-os:debian-db:sqlite-prefix:sub",
    "wsgi:uwsgi-web:nginx-pm:supervisord-os:debian-db:mysql",
    "wsgi:gunicorn-web:none-pm:supervisord-os:debian-db:postgresql-prefix:sub",
}
ON_HOSTS = [
    case
    for case in CASES
    if case.os_family == "debian"
    and not case.rootless
    and (case.process_manager == "systemd" or case.id in SUPERVISORD_ON_HOSTS)
]
# Its database moves to a second host, by the README's own steps.
REMOTE_DATABASE = "wsgi:uwsgi-web:nginx-pm:systemd-os:debian-db:postgresql-prefix:sub"
ON_MACHINE = [
    case for case in CASES if case.rootless or (case.os_family, case.process_manager) == ("rhel", "supervisord")
]


@pytest.mark.parametrize("case", ON_HOSTS, ids=[case.id for case in ON_HOSTS])
def test_stack_deploys_by_its_readme_on_a_host(case, hosts, package_mirror, timing):
    """The README's steps deploy the stack on a booted host; it serves pages, static
    files, a form backed by the database and its health check through the front
    server, runs hardened as the unit says, reloads without failing requests,
    restarts, comes back after a reboot and stops in time."""
    deployment = HostDeployment(
        case, hosts, package_mirror, HOST_WORK_ROOT / case.slug, timing, remote_database=case.id == REMOTE_DATABASE
    )
    with deployment.reporting():
        deployment.deploy()
        with deployment.step("checks"):
            deployment.check_active()
            deployment.check_journal()
            deployment.check_index()
            deployment.check_links()
            deployment.check_stylesheet()
            deployment.check_form()
            deployment.check_health()
            deployment.check_unknown_host()
            deployment.check_listening()
            deployment.check_hardening()
        with deployment.step("reload"):
            deployment.check_reload()
        with deployment.step("restart"):
            deployment.check_restart()
        deployment.check_reboot()
        deployment.check_index()
        with deployment.step("stop"):
            deployment.check_stop()
    print(f"{case.id}: " + "; ".join(deployment.checked))


@pytest.mark.parametrize("case", ON_MACHINE, ids=[case.id for case in ON_MACHINE])
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
