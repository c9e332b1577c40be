"""One case deployed on a booted test host by its README, run verbatim, under a real systemd.

The README's deploy section (every ```sh block from "Deploy on Debian/Ubuntu" up
to "Deploy a new version") runs as one shell script, as root, in a copy of the
project on the host that includes .env, put there by the README's own rsync
line. The host installs from the local mirror (tests/hosts/mirror.py). The
checks then read the live system: systemctl, the journal, /proc of the app's
processes, systemd-analyze security; the site is checked from this machine
through the front server at the host's address.
"""

import contextlib
import hashlib
import re
import threading
import time
from pathlib import Path

from helpers import Client, read_env_file, wait_for
from hosts import host as hostlib
from hosts import mirror as mirrorlib

from .deploy import bake
from .harness import Deployment

SSH = "ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes"
RELOAD_RESULTS = []  # (case id, requests, failed) for the terminal summary
EXPOSURE_LIMIT = 2.5
WORK_ROOT = Path("/var/tmp/flask-stack-e2e-hosts")  # the bakes and the logs of the host cases


def readme_deploy_script(readme):
    """Every ```sh block of the README's deploy section, in order, as one script."""
    section = readme.split("## Deploy on Debian/Ubuntu", 1)[1].split("### Deploy a new version", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks, "the README has no deploy steps"
    return "\n".join(blocks)


def parse_usec(text):
    """systemctl show's time spans: '30s', '1min 30s', '500ms', 'infinity'."""
    units = {"us": 1e-6, "ms": 0.001, "s": 1, "min": 60, "h": 3600}
    return sum(float(n) * units[u or "s"] for n, u in re.findall(r"(\d+(?:\.\d+)?)\s*(us|ms|min|s|h)?", text))


def stock_mirror(package_mirror, project):
    """Put what the README's pip steps install in the mirror: the locked requirements (their sdists and wheels,
    as on PyPI, so their hashes match) and the build backend of the project itself."""
    lock = project / "requirements.txt"
    stamp = mirrorlib.PACKAGES / f".synced-{hashlib.sha256(lock.read_bytes()).hexdigest()[:12]}"
    if not stamp.exists():
        package_mirror.add("--no-deps", "-r", lock)
        package_mirror.add(*mirrorlib.BUILD_REQUIREMENTS)
        stamp.write_text(lock.read_text())


class RemoteDatabase:
    """Read the case's database back with its own CLI, on the host that runs it."""

    def __init__(self, host, case, sqlite_path):
        self.host, self.case, self.sqlite_path = host, case, sqlite_path

    def dump_database(self):
        slug = self.case.slug
        if self.case.database == "sqlite":
            command = ["sqlite3", "-readonly", self.sqlite_path, ".dump"]
        elif self.case.database == "postgresql":
            command = ["runuser", "-u", "postgres", "--", "pg_dump", "--data-only", slug]
        else:
            command = ["mariadb-dump", "--skip-extended-insert", slug]
        return self.host.run(command).stdout


class HostDeployment(Deployment):
    """A case on a test host; the HTTP checks of Deployment run against the host's address."""

    def __init__(self, case, hosts, package_mirror, work, timings, remote_database=False):
        self.case = case
        self.hosts = hosts
        self.mirror = package_mirror
        self.work = Path(work)
        self.timings = timings
        self.checked = []
        self.prefix = "" if case.url_prefix == "/" else case.url_prefix.rstrip("/")
        self.host = None
        self.install = None
        self.program = None
        self.front_port = 80 if case.web_server == "none" else case.port
        self.remote_database = remote_database
        self.db_host = None
        self.logs_to_show = []

    # --- what the app server is, on this stack -----------------------------------

    @property
    def unit(self):
        """The systemd unit that runs the app: the generated one, Apache's, or supervisord's."""
        if self.case.wsgi_server == "mod_wsgi":
            return "apache2.service"
        if self.case.process_manager == "supervisord":
            return "supervisor.service"
        return f"{self.case.slug}.service"

    @property
    def socket_path(self):
        if self.case.web_server == "none" or self.case.wsgi_server == "mod_wsgi":
            return None
        return f"/run/{self.case.slug}/{self.case.wsgi_server}.sock"

    def show(self, *properties, unit=None):
        text = self.host.run(["systemctl", "show", unit or self.unit, "-p", ",".join(properties)]).stdout
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    def unit_pids(self, unit=None):
        """Machine-side PIDs of every process in the unit's cgroup."""
        group = self.show("ControlGroup", unit=unit)["ControlGroup"]
        if not group:
            return []
        return hostlib._cgroup_pids(hostlib.CGROUPS[0] / self.host.name / "payload" / group.lstrip("/"))

    def app_pids(self):
        """The app server's processes (mod_wsgi: Apache's daemon processes, which run as the app user)."""
        pids = self.unit_pids()
        if self.case.wsgi_server == "mod_wsgi" or self.case.process_manager == "supervisord":
            uid = int(self.host.run(["id", "-u", self.case.slug]).stdout)
            pids = [pid for pid in pids if proc_status(pid).get("Uid", "").split()[:1] == [str(uid)]]
        return pids

    # --- deploy ---------------------------------------------------------------------

    def deploy(self):
        hostlib.run(["rm", "-rf", self.work])
        self.work.mkdir(parents=True)
        with self.step("bake"):
            project = bake(self.case, self.work / "bake")
        with self.step("mirror"):
            stock_mirror(self.mirror, project)
        with self.step("boot"):
            self.host = self.hosts.boot()
            self.client = Client((self.host.address, self.front_port), self.case.domain)
        url = read_env_file(project / ".env")["FLASK_SQLALCHEMY_DATABASE_URI"]
        self.install = RemoteDatabase(self.host, self.case, url.split("sqlite:///", 1)[-1].split("?", 1)[0])
        with self.step("copy"):
            # The README's own way of bringing the project, .env included, to the server.
            ssh = f"{SSH} -i {self.host.key}"
            hostlib.run(
                ["rsync", "-a", "-e", ssh, "--exclude", ".venv", "--exclude", "instance", f"{project}/"]
                + [f"root@{self.host.address}:{self.case.slug}/"]
            )
        self.before_readme()
        script = readme_deploy_script((project / "README.md").read_text())
        with self.step("README deploy"):
            self.run_script(self.host, script, "deploy")
        self.checked.append(f"README deploy ran verbatim ({script.count(chr(10)) + 1} lines)")
        if self.case.web_server == "none":
            self.install_test_proxy(project)
        if self.remote_database:
            with self.step("database host"):
                self.move_database(project)

    def before_readme(self):
        """What the server has before the README's first step (a case may give it more, such as a CA to talk to)."""

    def run_script(self, host, script, name):
        """A README script as a root shell runs pasted steps: stop at the first that fails; log each command."""
        (self.work / f"{name}.sh").write_text(script)
        traced = "set -e -o pipefail\nPS4='+ [$SECONDS s] '\nset -x\n" + script
        result = host.run(
            ["bash", "-c", f"cd /root/{self.case.slug} 2>/dev/null || cd /root; exec bash /dev/stdin"],
            input=traced,
            check=False,
            timeout=1200,
        )
        log = self.work / f"{name}.log"
        log.write_text(result.stdout + "\n----- stderr -----\n" + result.stderr)
        self.logs_to_show.append(log)
        assert result.returncode == 0, (
            f"the README's {name} steps failed ({result.returncode}) on {host.name}:\n"
            + "\n".join((result.stdout + result.stderr).splitlines()[-60:])
        )

    def move_database(self, project):
        """The README's "Move the database to a server of its own", with a second host as the database server."""
        readme = (project / "README.md").read_text()
        section = readme.split("### Move the database to a server of its own", 1)[1].split("\n#", 1)[0]
        server, role, app = re.findall(r"```sh\n(.*?)```", section, re.S)
        self.db_host = self.hosts.boot()
        self.run_script(
            self.db_host,
            re.sub(r"^APP_SERVER=.*$", f"APP_SERVER={self.host.address}", server, flags=re.M),
            "database-server",
        )
        env_file = f"/etc/{self.case.slug}/{self.case.slug}.env"
        copy = Path(f"/proc/{self.db_host.init_pid()}/root/root/{self.case.slug}.env")  # the README's scp
        copy.write_text(self.host.read(env_file))
        copy.chmod(0o600)
        self.run_script(self.db_host, role, "database-role")
        self.run_script(
            self.host, re.sub(r"^DB_SERVER=.*$", f"DB_SERVER={self.db_host.address}", app, flags=re.M), "database-app"
        )
        self.host.run(["systemctl", "disable", "--now", "postgresql"])  # the README's last word: the local one goes
        self.install = RemoteDatabase(self.db_host, self.case, None)
        assert self.db_host.address in self.host.read(env_file), "the app's settings do not name the database host"
        self.checked.append(f"PostgreSQL on {self.db_host.name} ({self.db_host.address}), the local one stopped")

    def install_test_proxy(self, project):
        """nginx on the host with the README's example `location /` block, playing the host's proxy."""
        readme = (project / "README.md").read_text()
        location = re.search(r"```nginx\n(location .*?)```", readme, re.S).group(1)
        site = f"server {{\n    listen 80 default_server;\n    server_name _;\n{location}}}\n"
        self.host.sh(
            "apt-get install -y -qq nginx >/dev/null\n"
            f"cat > /etc/nginx/sites-available/proxy.conf <<'EOF'\n{site}EOF\n"
            "ln -sf /etc/nginx/sites-available/proxy.conf /etc/nginx/sites-enabled/proxy.conf\n"
            "rm -f /etc/nginx/sites-enabled/default\n"
            "nginx -t && systemctl reload-or-restart nginx\n"
            "ufw allow 80/tcp\n"  # the README: open only your proxy's ports
        )

    # --- reporting -----------------------------------------------------------------

    def logs(self):
        found = {}
        for log in self.logs_to_show:
            found[f"{log.name} (last lines)"] = "\n".join(log.read_text().splitlines()[-80:])
        if self.db_host is not None and self.db_host.init_pid():
            found["database host: postgresql"] = self.db_host.run(
                ["bash", "-c", "journalctl -n 40 --no-pager -u 'postgresql*'; tail -n 40 /var/log/postgresql/*.log"],
                check=False,
            ).stdout
        if self.host is not None and self.host.init_pid():
            found[f"journal of {self.unit}"] = self.host.run(
                ["journalctl", "--no-pager", "-o", "short-precise", "-n", "150", "-u", self.unit], check=False
            ).stdout
            found["failed units"] = self.host.failed_units()
            for path in ("/var/log/nginx/error.log", "/var/log/apache2/error.log", f"/var/log/{self.case.slug}/*.log"):
                found[path] = self.host.run(["bash", "-c", f"tail -n 40 {path}"], check=False).stdout
        elif self.host is not None:
            found["console"] = self.host.console_tail()
        return found

    def app_log_text(self):
        """What the app server logged: the unit's journal, or supervisord's log file of the program."""
        if self.case.process_manager == "supervisord":
            return self.host.run(["bash", "-c", f"cat /var/log/{self.case.slug}/*.log"], check=False).stdout
        return self.host.journal(self.unit, 2000)

    # --- checks under systemd ---------------------------------------------------------

    def check_active(self):
        """The unit is active; a Type=notify unit only gets there after READY=1."""
        shown = self.show("ActiveState", "SubState", "Type", "NRestarts", "User")
        assert shown["ActiveState"] == "active" and shown["SubState"] == "running", f"{self.unit}: {shown}"
        assert shown["NRestarts"] == "0", f"{self.unit} restarted: {shown}"
        if self.unit == f"{self.case.slug}.service":
            assert shown["Type"] == "notify" and shown["User"] == self.case.slug, shown
            self.checked.append("active (running) after READY=1, Type=notify")
        else:
            self.checked.append(f"{self.unit} active (running)")
        if self.case.process_manager == "supervisord":
            # RUNNING once the program has been up for startsecs.
            status = wait_for(
                lambda: "RUNNING" in self.host.run(["supervisorctl", "status", self.case.slug], check=False).stdout,
                30,
                0.5,
            )
            assert status, self.host.run(["supervisorctl", "status", self.case.slug], check=False).stdout
            self.checked.append("supervisorctl: RUNNING")

    def check_journal(self):
        text = self.app_log_text()
        expected = {"gunicorn": "Booting worker", "uwsgi": "uWSGI", "mod_wsgi": ""}[self.case.wsgi_server]
        if expected:
            assert expected in text, f"the app server's log lacks {expected!r}:\n{text[-3000:]}"
            where = "log file" if self.case.process_manager == "supervisord" else "journal"
            self.checked.append(f"{where} has {expected!r}")

    def check_hardening(self):
        """Read from the running app: its user, capabilities, seccomp, and what its mount namespace allows."""
        pids = self.app_pids()
        assert pids, f"no app server process in {self.unit}"
        uid = self.host.run(["id", "-u", self.case.slug]).stdout.strip()
        for pid in pids:
            status = proc_status(pid)
            assert status["Uid"].split()[0] == uid, f"pid {pid} runs as uid {status['Uid']}, not {self.case.slug}"
            if self.unit == f"{self.case.slug}.service":
                assert int(status["CapEff"], 16) == 0, f"pid {pid} has capabilities {status['CapEff']}"
                assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1", f"pid {pid}: {status}"
        self.checked.append(f"{len(pids)} processes as {self.case.slug}")
        if self.unit != f"{self.case.slug}.service":
            return  # the distribution's unit (Apache, supervisord) is not the template's
        self.checked.append("CapEff 0, seccomp 2, no_new_privs")
        self.host.run(["install", "-d", "-m", "0755", "/home/admin"])  # something in /home to hide
        probe = (
            "import os, sys\n"
            "for path in sys.argv[1:]:\n"
            "    try:\n"
            "        open(os.path.join(path, '.probe'), 'w')\n"
            "        print(path, 'writable')\n"
            "    except OSError as error:\n"
            "        print(path, error.errno)\n"
            "try:\n"
            "    print('/home', os.listdir('/home'))\n"
            "except OSError as error:\n"
            "    print('/home', error.errno)\n"
        )
        places = [f"/opt/{self.case.slug}", "/etc", "/usr"]
        # As root inside the app's mount namespace: ProtectSystem= makes them read-only (EROFS), not just unowned.
        as_root = hostlib.run(["nsenter", "-t", pids[0], "-m", "--", "/usr/bin/python3", "-c", probe, *places]).stdout
        as_app = hostlib.run(
            ["nsenter", "-t", pids[0], "-m", "-S", uid, "-G", uid, "--", "/usr/bin/python3", "-c", probe, *places]
        ).stdout
        assert "writable" not in as_root + as_app, f"the app can write: {as_root}{as_app}"
        assert all(f"{place} 30" in as_root for place in places), f"not read-only for the app: {as_root}"
        assert "['admin']" not in as_root + as_app, f"the app sees /home: {as_root}{as_app}"
        self.checked.append("code dir, /etc, /usr read-only (EROFS); /home hidden")
        exposure = self.host.run(["systemd-analyze", "security", "--no-pager", self.unit]).stdout
        level = float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", exposure).group(1))
        assert level <= EXPOSURE_LIMIT, f"systemd-analyze security {self.unit}: {level}\n{exposure[-2000:]}"
        self.checked.append(f"systemd-analyze security {level}")

    def check_reload(self, seconds=4.0, clients=3):
        """`systemctl reload` while clients keep requesting the index; failed requests are counted."""
        if self.case.process_manager == "supervisord":
            return  # supervisord's own reload restarts every program: no reload step in the README
        results = []
        stop = threading.Event()

        def load():
            client = Client((self.host.address, self.front_port), self.case.domain)
            while not stop.is_set():
                try:
                    results.append(client.get(self.url("health")).status == 200)
                except OSError:
                    results.append(False)

        threads = [threading.Thread(target=load) for _ in range(clients)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(seconds / 3)
            main_pid = self.show("MainPID")["MainPID"]
            self.host.run(["systemctl", "reload", self.unit])
            time.sleep(seconds * 2 / 3)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        failed = results.count(False)
        RELOAD_RESULTS.append((self.case.id, len(results), failed))
        assert self.show("MainPID")["MainPID"] == main_pid, "reload replaced the main process"
        assert results and results[-1], "the site does not answer after the reload"
        self.checked.append(f"reload under load: {failed} of {len(results)} requests failed")

    def check_restart(self):
        before = self.show("MainPID")["MainPID"]
        self.host.run(["systemctl", "restart", self.unit])
        self.wait_serving()
        after = self.show("MainPID")["MainPID"]
        assert after != before, f"systemctl restart kept MainPID {before}"
        self.checked.append("restart: new main process, serving")

    @property
    def socket_unit(self):
        """The generated socket unit that holds the app server's listening socket, or None."""
        if self.unit != f"{self.case.slug}.service":
            return None
        return f"{self.case.slug}.socket"

    def check_stop(self):
        """`systemctl stop` (of the socket unit too, as the README says) ends every process of the unit
        within TimeoutStopSec and removes the socket."""
        limit = parse_usec(self.show("TimeoutStopUSec")["TimeoutStopUSec"])
        start = time.monotonic()
        units = [self.socket_unit, self.unit] if self.socket_unit else [self.unit]
        self.host.run(["systemctl", "stop", *units], timeout=limit + 30)
        elapsed = time.monotonic() - start
        assert elapsed <= limit, f"systemctl stop took {elapsed:.1f} s, TimeoutStopSec is {limit:.0f} s"
        shown = self.show("ActiveState", "Result")
        assert shown["ActiveState"] == "inactive" and shown["Result"] == "success", f"{self.unit}: {shown}"
        assert not self.unit_pids(), f"processes left after stop: {self.unit_pids()}"
        if self.socket_path:
            left = self.host.run(["test", "-e", self.socket_path], check=False).returncode == 0
            assert not left, f"{self.socket_path} is left after stop"
        self.checked.append(f"stop in {elapsed:.1f} s (limit {limit:.0f} s), nothing left")

    def check_reboot(self):
        """After `systemctl reboot` of the host the service is back on its own."""
        with self.step("reboot"):
            self.host.reboot()
            self.wait_serving()
        self.check_active()
        self.checked.append("back after a reboot")

    def wait_serving(self, timeout=60):
        def serving():
            with contextlib.suppress(OSError):
                return self.client.get(self.url("health")).status == 200
            return False

        assert wait_for(serving, timeout, 0.3), f"the site does not answer {timeout} s after start"

    def check_listening(self):
        """The app server listens only on its unix socket or on 127.0.0.1 of the host."""
        pids = self.app_pids()
        sockets = listening(pids)
        public = [s for s in sockets if s[0] == "tcp" and s[1] not in ("127.0.0.1", "::1")]
        assert not public, f"the app server listens on a public address: {public}"
        if self.socket_path:
            assert sockets == {("unix", self.socket_path)}, f"not only {self.socket_path}: {sockets}"
            refused = self.host.run(
                ["runuser", "-u", "nobody", "--", "python3", "-c", CONNECT, self.socket_path], check=False
            )
            assert "PermissionError" in refused.stderr, f"nobody may connect to {self.socket_path}: {refused}"
            self.checked.append(f"listens only on {self.socket_path}; nobody is refused")
        elif self.case.wsgi_server != "mod_wsgi":
            assert ("tcp", "127.0.0.1", self.case.port) in sockets, f"not on 127.0.0.1:{self.case.port}: {sockets}"
            self.checked.append(f"listens only on 127.0.0.1:{self.case.port}")


CONNECT = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"


def proc_status(pid):
    with contextlib.suppress(OSError):
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}
    return {}


def listening(pids):
    """Listening sockets the processes hold, read in their own network namespace."""
    from .system import _hex_address, socket_inodes

    found = set()
    for pid in pids:
        inodes = socket_inodes(pid)
        for table in ("tcp", "tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[9]) in inodes:
                        found.add(("tcp", *_hex_address(fields[1])))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 8 and int(fields[3], 16) & 0x10000 and int(fields[6]) in inodes:
                    found.add(("unix", fields[7]))
    return found
