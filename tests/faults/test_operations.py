"""Releases, restarts, crashes and backups under load, on a booted test host per WSGI server.

Each stack is deployed by its README, verbatim (tests/e2e/on_host.py), then, with
clients requesting pages all along, on the same host:

- three reloads (the unit's own reload; Apache's graceful one for mod_wsgi): no request fails;
- a new version with a real code change, by the README's "Deploy a new version" steps run
  verbatim: no request fails, and the new code is what answers afterwards;
- kill -9 of one worker: at most the requests that worker was serving fail;
- kill -9 of the master: what fails is counted; it may be at most the requests in flight in
  its workers (the socket outlives the master, so new requests wait instead of failing);
- a backup taken while clients save notes, restored into a fresh database by the README's
  restore steps: every note acknowledged before the backup started is there.

Every scenario lands in the fault tier's table (results.record).
"""

import re
import threading
import time

import pytest
from e2e import web
from e2e.cases import Case
from e2e.on_host import SSH, HostDeployment
from helpers import Client, wait_for
from hosts import host as hostlib

from .load import Load
from .results import record

WORK_ROOT = hostlib.WORK_ROOT.parent / "flask-stack-faults-hosts"
CASES = [
    Case("gunicorn", "nginx", "systemd", "debian", "postgresql", index=61),
    Case("uwsgi", "nginx", "systemd", "debian", "sqlite", index=62),
    Case("mod_wsgi", "apache", "systemd", "debian", "sqlite", index=63),
]
# Requests one worker serves at once: gunicorn's sync worker 1, uWSGI's process 1, mod_wsgi threads=2.
WORKER_CONCURRENCY = {"gunicorn": 1, "uwsgi": 1, "mod_wsgi": 2}
CLIENTS = 4
# Apache's unit restarts a killed parent at once (Restart=on-abort); it then needs a moment to listen again.
KILLED_APACHE_BACK = 10


def stack_name(case):
    return f"{case.wsgi_server}+{case.web_server}+{case.database}"


def readme_section(readme, heading):
    """The ```sh blocks of the README section whose heading starts with `heading`."""
    match = re.search(rf"^###+ {re.escape(heading)}.*?$(.*?)(?=^##)", readme + "\n##", re.S | re.M)
    assert match, f"the README has no section {heading!r}"
    blocks = re.findall(r"```sh\n(.*?)```", match.group(1), re.S)
    assert blocks, f"the README section {heading!r} has no steps"
    return "\n".join(blocks)


def copy_step(readme):
    """The deploy step that copies the code to the install directory (the new-version steps repeat it)."""
    match = re.search(r"^### \d+\. Copy the code to .*?```sh\n(.*?)```", readme, re.S | re.M)
    assert match, "the README has no copy step"
    return match.group(1)


class Writers:
    """Clients that save notes through the form until stopped; each acknowledged note keeps its time."""

    def __init__(self, deployment, clients=2):
        self.deployment = deployment
        self.clients = clients
        self.acknowledged = []  # (monotonic time of the answer, marker)
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def _write(self):
        deployment = self.deployment
        client = Client((deployment.host.address, deployment.front_port), deployment.case.domain)
        path = deployment.url("notes/")
        page = web.Page(client.get(path).text)
        form = next(f for f in page.forms if f["method"] == "post")
        action = web.local_path(form["action"] or path, path)
        while not self._stop.is_set():
            marker = web.new_marker()
            try:
                status = client.post_form(action, web.fill(form, marker)).status
            except OSError:
                status = None
            with self._lock:
                if status in (302, 303):
                    self.acknowledged.append((time.monotonic(), marker))
                else:
                    self.failed += 1

    def __enter__(self):
        for _ in range(self.clients):
            thread = threading.Thread(target=self._write, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def acknowledged_before(self, moment):
        with self._lock:
            return [marker for at, marker in self.acknowledged if at < moment]


class Operations:
    """The scenarios, on one deployed stack; a missed bar is noted and the next scenario still runs."""

    def __init__(self, deployment, project):
        self.deployment = deployment
        self.case = deployment.case
        self.host = deployment.host
        self.project = project
        self.readme = (project / "README.md").read_text()
        self.stack = stack_name(self.case)
        self.missed = []

    def load(self):
        address = (self.host.address, self.deployment.front_port)
        paths = [self.deployment.url(), self.deployment.url("health"), self.deployment.url("notes/")]
        return Load(address, self.case.domain, paths, clients=CLIENTS)

    def outcome(self, load):
        return ", ".join(f"{k}: {n}" for k, n in sorted(load.outcomes.items(), key=str) if k != 200)

    def bar(self, scenario, load, allowed, extra=""):
        detail = "; ".join(part for part in (self.outcome(load), f"slowest {load.slowest:.1f} s", extra) if part)
        record(scenario, self.stack, load.requests, load.failed, detail)
        if load.failed > allowed:
            self.missed.append(f"{scenario}: {load.failed} of {load.requests} failed (bar {allowed}): {detail}")

    def main_pid(self):
        return int(self.deployment.show("MainPID")["MainPID"])

    def reload_command(self):
        if self.case.wsgi_server == "mod_wsgi":
            return ["systemctl", "reload", "apache2"]  # apache2ctl graceful
        return ["systemctl", "reload", f"{self.case.slug}.service"]

    def reloads(self, count=3):
        with self.load() as load:
            for _ in range(count):
                time.sleep(1.5)
                self.host.run(self.reload_command())
            time.sleep(3)
        # gunicorn and uWSGI reload without a failed request. Apache's graceful reload restarts the mod_wsgi
        # daemons, and a request that reaches the daemons' socket while it is made again gets 503 (WSGI0117,
        # no such file): 1 of 5535 in three reloads, 5 of 11655 in another run, none in others. So its bar is
        # the requests in flight at each reload, as for a release.
        allowed = count * CLIENTS if self.case.wsgi_server == "mod_wsgi" else 0
        self.bar(f"reload x{count}", load, allowed, f"bar {allowed}")

    def new_version(self):
        """A real code change, copied to the server and released by the README's steps while clients keep asking."""
        release = web.new_marker()
        health = self.project / self.case.slug / "health.py"
        text = health.read_text()
        new = text.replace(
            'return {"status": "ok", "database": "ok"}',
            f'return {{"status": "ok", "database": "ok", "release": "{release}"}}',
        )
        assert new != text, "health.py changed: the release marker has nowhere to go"
        health.write_text(new)
        # The README's way of bringing the new version to the server: its rsync into a copy of the project.
        hostlib.run(
            ["rsync", "-a", "-e", f"{SSH} -i {self.host.key}", "--exclude", ".venv", "--exclude", "instance"]
            + [f"{self.project}/", f"root@{self.host.address}:{self.case.slug}/"]
        )
        script = copy_step(self.readme) + "\n" + readme_section(self.readme, "Deploy a new version")
        served = threading.Event()
        health_client = Client((self.host.address, self.deployment.front_port), self.case.domain)

        def new_code_answers():
            try:
                return release in health_client.get(self.deployment.url("health")).text
            except OSError:
                return False

        start = time.monotonic()
        with self.load() as load:
            time.sleep(1)
            self.deployment.run_script(self.host, script, "new-version")
            if wait_for(new_code_answers, 60, 0.2):
                served.set()
            took = time.monotonic() - start
            time.sleep(1)
        # gunicorn and uWSGI release without a failed request; mod_wsgi's bar is the requests in flight when
        # Apache restarts its daemons (the reload scenario).
        allowed = CLIENTS if self.case.wsgi_server == "mod_wsgi" else 0
        detail = f"new code served after {took:.1f} s; bar {allowed}" if served.is_set() else f"bar {allowed}"
        self.bar("new version (README)", load, allowed, detail)
        if not served.is_set():
            self.missed.append("new version: the new code is not served 60 s after the README's steps")

    def worker_pids(self):
        """The app server's workers: children of the master, or mod_wsgi's daemon processes."""
        if self.case.wsgi_server == "mod_wsgi":
            command = f"pgrep -u {self.case.slug}"
        else:
            command = f"pgrep -P {self.main_pid()}"
        return [int(p) for p in self.host.run(["bash", "-c", command], check=False).stdout.split()]

    def kill_worker(self):
        with self.load() as load:
            time.sleep(1.5)
            workers = self.worker_pids()
            assert workers, "no worker process found"
            self.host.run(["kill", "-9", str(workers[0])])
            time.sleep(4)
        allowed = min(CLIENTS, WORKER_CONCURRENCY[self.case.wsgi_server])
        self.bar("kill -9 one worker", load, allowed, f"bar {allowed}")

    def kill_master(self):
        """kill -9 of the master; its unit starts it again.

        The bar: where systemd holds the listening socket (gunicorn, uWSGI), at most the requests the workers
        had in flight. Apache (mod_wsgi) opens its port afresh when its unit restarts it: connections are
        refused meanwhile, so there the bar is Apache serving again within KILLED_APACHE_BACK seconds.
        """
        unit = "apache2.service" if self.case.wsgi_server == "mod_wsgi" else f"{self.case.slug}.service"
        before = int(self.deployment.show("MainPID", unit=unit)["MainPID"])
        with self.load() as load:
            time.sleep(1.5)
            killed = time.monotonic()
            self.host.run(["kill", "-9", str(before)])
            back = wait_for(
                lambda: self.deployment.show("MainPID", unit=unit)["MainPID"] not in ("0", str(before)), 60, 0.1
            )
            self.deployment.wait_serving()
            took = time.monotonic() - killed
            time.sleep(2)
        if self.case.wsgi_server == "mod_wsgi":
            allowed, bar = load.requests, f"bar: serving again within {KILLED_APACHE_BACK} s"
            if took > KILLED_APACHE_BACK:
                self.missed.append(f"kill -9 master: Apache served again only after {took:.1f} s")
        else:
            allowed, bar = CLIENTS, f"bar {CLIENTS} (in flight)"
        self.bar("kill -9 master", load, allowed, f"serving again after {took:.1f} s; {bar}")
        if not back:
            self.missed.append(f"kill -9 master: {unit} was not restarted")

    def backup_and_restore(self):
        """A backup while notes are being saved, restored by the README into a fresh database."""
        timer = self.project / "deploy" / "backup" / f"{self.case.slug}-backup.timer"
        if not timer.exists():
            record("backup under writes + restore", self.stack, 0, 0, "no backup in the template")
            self.missed.append("backup: the stack has no backup timer")
            return
        shown = self.deployment.show("ActiveState", unit=timer.name)
        if shown["ActiveState"] != "active":
            self.missed.append(f"{timer.name} is not active after the README's steps: {shown}")
        with Writers(self.deployment) as writers:
            time.sleep(2)
            started = time.monotonic()
            self.host.run(["systemctl", "start", f"{self.case.slug}-backup.service"], timeout=300)
            took = time.monotonic() - started
            time.sleep(1)
        before = writers.acknowledged_before(started)
        listing = self.host.run(
            ["bash", "-c", f"stat -c '%a %U:%G %n' /var/backups/{self.case.slug} /var/backups/{self.case.slug}/*"]
        ).stdout
        modes = [line.split()[:2] for line in listing.splitlines()]
        if any(
            mode not in (["700", f"{self.case.slug}:{self.case.slug}"], ["600", f"{self.case.slug}:{self.case.slug}"])
            for mode in modes
        ):
            self.missed.append(f"backup files are not the app's alone:\n{listing}")
        self.deployment.run_script(self.host, readme_section(self.readme, "Restore a backup"), "restore")
        self.deployment.wait_serving()
        dump = self.deployment.install.dump_database()
        lost = [marker for marker in before if marker not in dump]
        detail = (
            f"{len(before)} notes acknowledged before the backup ({took:.1f} s), "
            f"{len(writers.acknowledged)} in all; {len(lost)} missing after restore"
        )
        record("backup under writes + restore", self.stack, len(before), len(lost), detail)
        if lost or not before:
            self.missed.append(f"restore: {detail}")


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_releases_restarts_crashes_and_backups(case, hosts, package_mirror):
    """Reloads and the README's new-version steps fail no request; a killed worker fails at most what it
    was serving; a killed master is counted; a backup taken under writes restores every acknowledged note."""
    deployment = HostDeployment(case, hosts, package_mirror, WORK_ROOT / case.slug, {})
    with deployment.reporting():
        deployment.deploy()
        deployment.wait_serving()
        operations = Operations(deployment, deployment.work / "bake" / case.slug)
        operations.reloads()
        operations.new_version()
        operations.kill_worker()
        operations.kill_master()
        operations.backup_and_restore()
        assert not operations.missed, "\n".join(operations.missed)
