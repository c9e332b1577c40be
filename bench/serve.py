"""Serving speed of the generated stacks against a hand-tuned and a tutorial setup of the same server.

    python bench/serve.py [--rounds 3] [--duration 10] [--stacks gunicorn-nginx,...] [--before main]

Run as root on a machine with nginx, Apache (apxs), gcc, python3-dev and wrk
(the end-to-end tier's packages, plus `apt-get install wrk`). For each stack
(SQLite) it bakes the project, installs it as the README says with the
end-to-end tier's deploy code (its own system user, its environment file,
sockets under /run/<slug>/, real nginx/Apache as www-data) and then, in one
interleaved run, serves the same installed app three ways:

- generated: the baked configs, byte for byte, started with the unit's ExecStart;
- hand: one operator's tuning of the same server (HAND below);
- tutorial: the commands of the tutorials this template replaces (TUTORIAL below);
- before (with --before REF): the configs the template generated at git REF, started
  the same way as generated, so a tuning change is measured against its own starting
  point in the same interleaved run.

Each round starts every variant afresh (cold start = start to the first 200 on
/), loads `/`, `/health` and `/notes/` with `wrk -t2 -c50`, then stops it; the
order of the variants rotates from round to round. The last round adds an
overload run (c200 on /). The table gives medians over the rounds. CPU used by
everything else on the machine during each run (/proc/stat minus the app
server, the front server and wrk) is the "others" column: a noisy run shows.
Nothing here asserts a speed; it only prints.

Loopback only: every request goes to 127.0.0.1.
"""

import argparse
import contextlib
import grp
import json
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the end-to-end tier imports the tests' helpers module

from helpers import Unit, read_env_file  # noqa: E402

from tests.e2e.cases import Case  # noqa: E402
from tests.e2e.deploy import Wheelhouse  # noqa: E402
from tests.e2e.harness import Deployment, one_file  # noqa: E402
from tests.e2e.servers import Apache, Nginx  # noqa: E402
from tests.e2e.system import Cleanup, ProcessTree, make_dir, process_ids, remove_tree, run  # noqa: E402

WORK = Path("/tmp/serve-bench")
BASE_PORT = 25000  # the end-to-end tier uses 24100 and up
PATHS = ["/", "/health", "/notes/"]
VARIANTS = ["generated", "hand", "tutorial"]
BASELINES = ("hand", "tutorial")  # every other variant is a set of generated configs, held to the bar
STACKS = {
    "gunicorn-nginx": ("gunicorn", "nginx"),
    "uwsgi-nginx": ("uwsgi", "nginx"),
    "mod_wsgi-apache": ("mod_wsgi", "apache"),
    "uwsgi-none": ("uwsgi", "none"),
    "gunicorn-none": ("gunicorn", "none"),
}
CPU_TICKS = os.sysconf("SC_CLK_TCK")
NOTES = 20  # rows on /notes/


# --- the stacks ----------------------------------------------------------------


@dataclass
class BenchCase(Case):
    """An end-to-end case with the benchmark's own slug, ports and names."""

    name: str = ""

    @property
    def slug(self):
        return f"srv{self.index:02d}_" + self.name.replace("-", "_").replace("mod_wsgi", "modwsgi")

    @property
    def port(self):
        return BASE_PORT + 10 * self.index

    @property
    def project_name(self):
        return f"Serve Bench {self.index:02d}"


def bench_case(index, name):
    wsgi, web = STACKS[name]
    return BenchCase(wsgi, web, "systemd", "debian", "sqlite", index=index, name=name)


# --- the variants: hand-tuned and tutorial configs of the same server ------------


def gunicorn_argv(dep, *options):
    return [str(dep.install.venv / "bin" / "gunicorn"), "--chdir", str(dep.install.root), *options, "wsgi:app"]


def gunicorn_bind(dep, name):
    if dep.case.web_server == "none":
        return f"127.0.0.1:{dep.case.port}"
    return f"unix:/run/{dep.case.slug}/{name}"


def uwsgi_ini(dep, lines):
    """A uWSGI ini in the install directory (root-owned, readable by the service user)."""
    return "[uwsgi]\n" + "\n".join(lines) + "\n"


HAND_GUNICORN_WORKERS = 4
HAND_UWSGI_PROCESSES = 4


def hand_gunicorn(dep):
    """What an operator who measured would run: no recycling, no access log, workers ~ 2 x cores."""
    return gunicorn_argv(
        dep,
        "--workers",
        str(HAND_GUNICORN_WORKERS),
        "--bind",
        gunicorn_bind(dep, "gunicorn.sock"),
        "--umask",
        "0o007",
        "--worker-tmp-dir",
        "/dev/shm",
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--no-control-socket",
    )


def tutorial_gunicorn(dep):
    """The tutorial's unit: `gunicorn --workers 3 --bind unix:app.sock -m 007 wsgi:app`."""
    return gunicorn_argv(dep, "--workers", "3", "--bind", gunicorn_bind(dep, "app.sock"), "-m", "007")


def uwsgi_common(dep):
    return [
        f"chdir = {dep.install.root}",
        f"virtualenv = {dep.install.venv}",
        "module = wsgi:app",
        "master = true",
    ]


def uwsgi_bind(dep, name, http):
    if dep.case.web_server == "none":
        return [f"{'http11-socket' if http else 'http-socket'} = 127.0.0.1:{dep.case.port}"]
    return [f"socket = /run/{dep.case.slug}/{name}", "chmod-socket = 660", "vacuum = true"]


def hand_uwsgi(dep):
    # http-socket, not http11-socket: with keep-alive each idle client connection holds a worker, and
    # measured with 4 processes the fifth client waited 4 s (socket-timeout) for its first byte.
    return uwsgi_ini(
        dep,
        uwsgi_common(dep)
        + uwsgi_bind(dep, "uwsgi.sock", http=False)
        + [
            "need-app = true",
            "single-interpreter = true",
            f"processes = {HAND_UWSGI_PROCESSES}",
            "listen = 1024",
            "disable-logging = true",
            "die-on-term = true",
        ],
    )


def tutorial_uwsgi(dep):
    """The tutorial's ini: master, 5 processes, a socket 660, vacuum, die-on-term."""
    return uwsgi_ini(
        dep, uwsgi_common(dep) + ["processes = 5"] + uwsgi_bind(dep, "app.sock", http=False) + ["die-on-term = true"]
    )


def daemon_line(site, replacement):
    """The generated Apache site with its WSGIDaemonProcess directive replaced."""
    pattern = re.compile(r"^( *)WSGIDaemonProcess (\S+) .*?(?<!\\)\n", re.M | re.S)
    match = pattern.search(site)
    assert match, "no WSGIDaemonProcess in the generated site"
    return (
        site[: match.start()]
        + f"{match.group(1)}WSGIDaemonProcess {match.group(2)} {replacement}\n"
        + site[match.end() :]
    )


def hand_mod_wsgi(dep, site):
    i = dep.install
    return daemon_line(
        site,
        f"user={i.user} group={i.group} processes=2 threads=4 python-home={i.venv} home={i.root} "
        "display-name=%{GROUP} lang=C.UTF-8 locale=C.UTF-8 request-timeout=30 socket-timeout=60 listen-backlog=500",
    )


def tutorial_mod_wsgi(dep, site):
    """Flask's mod_wsgi page: `WSGIDaemonProcess yourapplication user=user1 group=group1 threads=5`."""
    i = dep.install
    return daemon_line(site, f"user={i.user} group={i.group} threads=5 python-home={i.venv} home={i.root}")


def tutorial_nginx(dep, socket_path):
    """The tutorial's server block: `include proxy_params; proxy_pass http://unix:...` (or uwsgi_pass)."""
    case = dep.case
    if case.wsgi_server == "uwsgi":
        upstream = f"include uwsgi_params;\n        uwsgi_pass unix:{socket_path};"
    else:
        upstream = f"include proxy_params;\n        proxy_pass http://unix:{socket_path};"
    return f"""server {{
    listen {case.port};
    server_name {case.domain};
    location /static/ {{
        alias {dep.install.root}/{case.slug}/static/;
    }}
    location / {{
        {upstream}
    }}
}}
"""


# --- servers -------------------------------------------------------------------------


class DebianNginx(Nginx):
    """nginx with Debian's stock nginx.conf (worker_processes auto, 768 connections, access log on)."""

    def write_config(self):
        self.prefix.mkdir(parents=True, exist_ok=True)
        for name in ("mime.types", "uwsgi_params", "proxy_params"):
            link = self.prefix / name
            if not link.exists():
                link.symlink_to(Path("/etc/nginx", name))
        includes = "\n".join(f"    include {path};" for path in self.includes)
        self.conf.write_text(f"""user {self.user} {self.group};
worker_processes auto;
daemon off;
pid {self.prefix}/nginx.pid;
error_log {self.error_log};
events {{ worker_connections 768; }}
http {{
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include mime.types;
    default_type application/octet-stream;
    access_log {self.access_log};
    gzip on;
{includes}
}}
""")


# Debian's mods-available/mpm_event.conf.
APACHE_MPM_EVENT = [
    "StartServers 2",
    "MinSpareThreads 25",
    "MaxSpareThreads 75",
    "ThreadLimit 64",
    "ThreadsPerChild 25",
    "MaxRequestWorkers 150",
    "MaxConnectionsPerChild 0",
]


class ServiceUnit:
    """What the bench needs of the generated unit: user, group, environment, ExecStart (no specifiers in it)."""

    def __init__(self, path):
        self.unit = Unit(path)
        self.user = self.unit.get("User", "root")
        self.group = self.unit.get("Group") or self.user

    def environment(self):
        home = pwd.getpwnam(self.user).pw_dir
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "USER": self.user, "HOME": home}
        for line in self.unit.all("EnvironmentFile"):
            env.update(read_env_file(line.lstrip("-")))
        return env

    def command(self, env=None):
        return shlex.split(self.unit.get("ExecStart"))


class SocketUnit:
    """The listening socket systemd makes of the generated .socket unit: its address, group, mode and queue."""

    def __init__(self, path):
        self.unit = Unit(path)
        self.listen = self.option("ListenStream", None)
        self.sock = None

    def option(self, key, default):
        return self.unit.get(key, default, section="Socket")

    def open(self):
        if self.listen.startswith("/"):
            Path(self.listen).unlink(missing_ok=True)
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(self.listen)
            os.chown(self.listen, 0, grp.getgrnam(self.option("SocketGroup", "root")).gr_gid)
            os.chmod(self.listen, int(self.option("SocketMode", "0666"), 8))
        else:
            host, port = self.listen.rsplit(":", 1)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, int(port)))
        self.sock.listen(int(self.option("Backlog", str(socket.SOMAXCONN))))
        return self.sock.fileno()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.listen.startswith("/") and self.option("RemoveOnStop", "no") == "yes":
            Path(self.listen).unlink(missing_ok=True)


def with_listen_fd(fd, argv):
    """argv started as systemd starts a socket-activated service: the socket is fd 3, LISTEN_FDS=1."""
    move = "" if fd == 3 else f"exec 3<&{fd} {fd}<&-; "
    return ["sh", "-c", move + 'export LISTEN_FDS=1 LISTEN_PID=$$; exec "$@"', "sh", *argv]


class AppServer:
    """One app server variant run the way the generated unit runs its ExecStart.

    With a socket unit, the socket is bound here as systemd binds it and handed over (LISTEN_FDS).
    Without one (hand, tutorial), the app server binds its own socket and runs with the front
    server's group, as the tutorials' units do (`Group=www-data`), so that the front server may connect.
    """

    def __init__(self, dep, argv, name, socket_unit=None):
        self.dep = dep
        self.argv = argv
        self.name = name
        self.unit = ServiceUnit(dep.deployed("deploy/systemd", "*.service", "unit"))
        self.socket = SocketUnit(socket_unit) if socket_unit else None
        self.tree = None

    def start(self):
        unit = self.unit
        group = unit.group
        if self.socket is None and self.dep.case.web_server != "none":
            group = self.dep.case.rendered()["__front_group"]
        runtime = Path(f"/run/{self.dep.case.slug}")
        remove_tree(runtime)
        if self.socket is not None:  # systemd makes the socket's folder
            make_dir(runtime, Cleanup(), "root", "root", 0o755)
        elif unit.unit.get("RuntimeDirectory"):
            make_dir(runtime, Cleanup(), unit.user, group, int(unit.unit.get("RuntimeDirectoryMode", "0755"), 8))
        else:  # the tutorial's socket needs a folder too
            make_dir(runtime, Cleanup(), unit.user, group, 0o750)
        for path in [Path(f"/var/lib/{n}") for v in unit.unit.all("StateDirectory") for n in v.split()]:
            path.mkdir(exist_ok=True)
        env = unit.environment()
        privileges = ["setpriv", "--reuid", unit.user, "--regid", group, "--init-groups", "--no-new-privs"]
        argv = privileges + ["--"] + self.argv
        fds = ()
        if self.socket is not None:
            fd = self.socket.open()
            argv, fds = with_listen_fd(fd, argv), (fd,)
        umask = int(unit.unit.get("UMask", "0022"), 8)
        log = self.dep.work / f"app-{self.name.replace(':', '-')}.log"
        log.unlink(missing_ok=True)
        self.tree = ProcessTree(
            f"bench-{self.dep.case.slug}-{self.name}",
            argv,
            log,
            env=env,
            cwd=unit.unit.get("WorkingDirectory"),
            umask=umask,
            pass_fds=fds,
        )
        return self.tree

    def stop(self):
        if self.tree is not None:
            self.tree.stop(signal.SIGTERM, 30)
        if self.socket is not None:
            self.socket.close()


def unit_argv(dep):
    return ServiceUnit(dep.deployed("deploy/systemd", "*.service", "unit")).command()


class Variant:
    """Start and stop one variant (app server + front) of one deployed stack."""

    def __init__(self, dep, name, edits=None):
        self.dep = dep
        self.name = name
        self.edits = edits or []  # (file glob under deploy/, old, new): a one-change experiment on "generated"
        self.app = None
        self.front = None

    # the files of this variant --------------------------------------------------

    def _edited(self, folder, pattern):
        """The generated file (of the --before bake for "before"), or a copy with this variant's edits applied."""
        if self.kind() == "before":
            return one_file(self.dep.before / folder, pattern, f"{folder} of the --before bake")
        path = self.dep.deployed(folder, pattern, folder)
        edits = [(old, new) for glob, old, new in self.edits if Path(folder, path.name).match(glob)]
        if not edits:
            return path
        text = path.read_text()
        for old, new in edits:
            assert old in text, f"{old!r} not in {path}"
            text = text.replace(old, new)
        copy = self.folder() / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(text)
        copy.chmod(0o644)
        return copy

    def _write(self, name, text):
        path = self.folder() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
        return path

    def folder(self):
        return self.dep.install.root / "bench" / self.name.replace(":", "-")

    def kind(self):
        return self.name.split(":")[0]

    def app_argv(self):
        dep, kind = self.dep, self.kind()
        wsgi = dep.case.wsgi_server
        if kind in ("generated", "before"):
            argv = unit_argv(dep)
            config = self._edited(f"deploy/{wsgi}", "gunicorn.conf.py" if wsgi == "gunicorn" else "*.ini")
            return [str(config) if word.startswith(str(dep.install.root / "deploy")) else word for word in argv]
        if wsgi == "gunicorn":
            return hand_gunicorn(dep) if kind == "hand" else tutorial_gunicorn(dep)
        ini = self._write("app.ini", hand_uwsgi(dep) if kind == "hand" else tutorial_uwsgi(dep))
        return [str(dep.install.venv / "bin" / "uwsgi"), "--ini", str(ini)]

    def socket_unit(self):
        """The .socket unit the generated (or --before) configs start with, if any."""
        if self.kind() not in ("generated", "before"):
            return None
        root = self.dep.before if self.kind() == "before" else self.dep.install.root
        found = sorted((root / "deploy" / "systemd").glob("*.socket"))
        return found[0] if found else None

    def front_site(self):
        dep, kind = self.dep, self.kind()
        if dep.case.web_server == "nginx":
            if kind == "tutorial":
                return self._write("site.conf", tutorial_nginx(dep, f"/run/{dep.case.slug}/app.sock"))
            return self._edited("deploy/nginx", "*.conf")
        site = self._edited("deploy/apache", "*.conf")
        if kind in ("generated", "before"):
            return site
        make = hand_mod_wsgi if kind == "hand" else tutorial_mod_wsgi
        return self._write("site.conf", make(dep, site.read_text()))

    # start / stop -------------------------------------------------------------------

    def start(self):
        """Start the variant; return the seconds from starting the app server to the first 200 on /."""
        dep = self.dep
        taken = listeners(dep.case.port)
        if taken:  # else the run would measure whatever still listens there
            raise RuntimeError(f"port {dep.case.port} is taken: {taken}")
        web = dep.case.web_server
        cleanup = Cleanup()
        self.cleanup = cleanup
        if web == "nginx":
            self.front = DebianNginx(
                dep.work / f"nginx-{self.name.replace(':', '-')}", "www-data", "www-data", [self.front_site()], cleanup
            )
            self.front.start(f"bench-nginx-{dep.case.slug}", dep.case.port)
        if dep.case.wsgi_server == "mod_wsgi":
            start = time.monotonic()
            site = self.front_site()
            modules = dep._apache_modules()
            extra = run([dep.install.venv / "bin" / "mod_wsgi-express", "module-config"]).stdout.splitlines()
            self.front = Apache(
                dep.work / f"apache-{self.name.replace(':', '-')}",
                "www-data",
                "www-data",
                site,
                dep.case.port,
                modules,
                extra + APACHE_MPM_EVENT + ["LogLevel warn"],
                cleanup,
            )
            self.front.start(f"bench-apache-{dep.case.slug}")
        else:
            self.app = AppServer(dep, self.app_argv(), self.name, self.socket_unit())
            start = time.monotonic()
            self.app.start()
        if not wait_ok(dep.case.port, dep.case.domain, "/", 60):
            raise RuntimeError(f"{dep.case.slug} {self.name}: no 200 on / within 60 s\n{self.logs()}")
        return time.monotonic() - start

    def logs(self):
        text = ""
        if self.app is not None and self.app.tree is not None:
            text += self.app.tree.log()
        if self.front is not None:
            text += "\n".join(f"== {k}\n{v}" for k, v in self.front.logs().items())
        return text

    def stop(self):
        if self.app is not None:
            self.app.stop()
            self.app = None
        self.cleanup.run()
        left = release_port(self.dep.case.port)
        if self.front is not None:
            remove_tree(self.front.prefix)  # its access log grows by the million lines
        self.front = None
        if left:
            raise RuntimeError(f"{self.name} left processes listening on {self.dep.case.port}: killed {left}")

    # what to measure ------------------------------------------------------------------

    def app_pids(self):
        if self.app is not None:
            return self.app.tree.pids()
        uid = pwd_uid(self.dep.install.user)
        return [pid for pid in self.front.tree.pids() if owner(pid) == uid]

    def app_cgroup(self):
        return self.app.tree.cgroup if self.app is not None else None

    def front_cgroup(self):
        return self.front.tree.cgroup if self.front is not None else None

    def front_pids(self):
        return self.front.tree.pids() if self.front is not None else []


def listeners(port):
    """PIDs of the processes listening on a TCP port."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
    return sorted({int(pid) for pid in re.findall(r"pid=(\d+)", out)})


def release_port(port, timeout=20):
    """Wait until nothing listens on port; kill what still does after timeout (a stop that missed it)."""
    deadline = time.monotonic() + timeout
    while listeners(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = listeners(port)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def pwd_uid(user):
    return pwd.getpwnam(user).pw_uid


def owner(pid):
    """The real uid of a process (/proc/PID itself is root's once a process changed its uid)."""
    try:
        return process_ids(pid)[0]
    except OSError:
        return None


def wait_ok(port, host, path, timeout):
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    return False


# --- measuring -------------------------------------------------------------------------


def machine_busy():
    """CPU seconds the whole machine spent busy (all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CPU_TICKS


def cgroup_cpu(cgroup):
    if cgroup is None:
        return 0.0
    for line in (Path(cgroup) / "cpu.stat").read_text().splitlines():
        if line.startswith("usage_usec"):
            return int(line.split()[1]) / 1e6
    return 0.0


def process_cpu(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CPU_TICKS


class PidCpu:
    """CPU of a changing set of processes, sampled often (for mod_wsgi daemons inside Apache's tree)."""

    def __init__(self, pids):
        self.pids = pids
        self.first, self.last = {}, {}
        self.stopping = threading.Event()
        self.sample(initial=True)
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def sample(self, initial=False):
        for pid in self.pids():
            value = process_cpu(pid)
            if value is None:
                continue
            if pid not in self.first:
                self.first[pid] = value if initial else 0.0
            self.last[pid] = value

    def loop(self):
        while not self.stopping.wait(0.1):
            self.sample()

    def total(self):
        self.stopping.set()
        self.thread.join()
        self.sample()
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def memory(pids):
    """(RSS, PSS) in MiB summed over the processes."""
    rss = pss = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss / 1024, pss / 1024


WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end
function done(summary, latency, requests)
  local counts = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do counts[k] = (counts[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(counts) do table.insert(parts, string.format('"%d": %d', k, v)) end
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "mean_us": %d, "p50_us": %d, "p99_us": %d, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "statuses": {%s}}\\n',
    summary.requests, summary.duration, latency.mean, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, table.concat(parts, ", ")))
end
"""


def wrk(port, host, path, connections, duration, threads=2):
    script = WORK / "count.lua"
    if not script.exists() or script.read_text() != WRK_SCRIPT:
        script.write_text(WRK_SCRIPT)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        "-H",
        f"Host: {host}",
        f"http://127.0.0.1:{port}{path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
    line = next((x for x in result.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return json.loads(line[6:])


def measure(variant, path, connections, duration):
    """One wrk run on one path of a running variant, with the CPU of everyone involved."""
    dep = variant.dep
    sampler = PidCpu(variant.app_pids) if variant.app is None else None
    app0, front0 = cgroup_cpu(variant.app_cgroup()), cgroup_cpu(variant.front_cgroup())
    busy0 = machine_busy()
    child0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = wrk(dep.case.port, dep.case.domain, path, connections, duration)
    child1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = machine_busy() - busy0
    front = cgroup_cpu(variant.front_cgroup()) - front0
    if sampler is not None:
        app = sampler.total()
        front -= app  # the daemons live in Apache's tree
    else:
        app = cgroup_cpu(variant.app_cgroup()) - app0
    wrk_cpu = (child1.ru_utime - child0.ru_utime) + (child1.ru_stime - child0.ru_stime)
    seconds = result["duration_us"] / 1e6
    statuses = {int(k): v for k, v in result["statuses"].items()}
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    return {
        "rps": result["requests"] / seconds,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        # Little's law: the connections that had a request in flight on average. Far under the
        # connections wrk opened means the others waited unanswered (e.g. workers held by keep-alive).
        "served_connections": result["requests"] / seconds * result["mean_us"] / 1e6,
        "requests": result["requests"],
        "ok": ok,
        "non2xx": {k: v for k, v in statuses.items() if not 200 <= k < 300},
        "socket_errors": {k: v for k, v in result["errors"].items() if v},
        "app_cpu_ms_per_req": 1000 * app / max(result["requests"], 1),
        "app_cpu": app,
        "front_cpu": front,
        "wrk_cpu": wrk_cpu,
        "others_pct": 100 * max(busy - app - front - wrk_cpu, 0) / (seconds * os.cpu_count()),
    }


# --- the run -----------------------------------------------------------------------------


def before_template(ref):
    """The template as it was at git REF, unpacked once per run."""
    folder = WORK / f"template-{re.sub(r'[^A-Za-z0-9._-]', '_', ref)}"
    remove_tree(folder)
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", ROOT, "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def bake_before(dep, template):
    """The deploy files the template at --before generates for this case, readable by the service user."""
    out = dep.work / "bake-before"
    remove_tree(out)
    answers = [f"{key}={value}" for key, value in dep.case.answers().items()]
    run([sys.executable, "-m", "cookiecutter", str(template), "--no-input", "-o", out, *answers])
    folder = dep.install.root / "bench" / "before"
    remove_tree(folder)
    shutil.copytree(out / dep.case.slug / "deploy", folder / "deploy")
    run(["chmod", "-R", "u=rwX,go=rX", folder])
    return folder


def deploy(case, wheelhouse, cleanup, reuse, before=None):
    """Bake and install one stack; with reuse, only refresh the code and configs of an earlier install."""
    dep = _deploy(case, wheelhouse, cleanup, reuse)
    dep.before = bake_before(dep, before) if before else None
    return dep


def _deploy(case, wheelhouse, cleanup, reuse):
    dep = Deployment(case, cleanup, wheelhouse)
    root = Path(case.install_dir)
    if reuse and (root / ".venv" / "bin" / "python").exists():
        from tests.e2e.deploy import Install, bake

        remove_tree(dep.work / "bake")
        dep.work.mkdir(parents=True, exist_ok=True)
        project = bake(case, dep.work / "bake")
        dep.install = Install(case, project, cleanup)
        for item in project.iterdir():
            if item.name in (".env", ".venv"):
                continue
            target = root / item.name
            remove_tree(target)
            shutil.copytree(item, target) if item.is_dir() else shutil.copy2(item, target)
        run(["chmod", "-R", "u=rwX,go=rX", root / "deploy", root / case.slug])
        return dep
    dep.deploy()
    dep.init_db()
    seed_notes(dep)
    return dep


def seed_notes(dep):
    path = dep.install.sqlite_path
    values = ",".join(f"('note number {n} of the serving benchmark', datetime('now'))" for n in range(NOTES))
    run(["sqlite3", path, f"INSERT INTO note (body, created_at) VALUES {values};"])
    shutil.chown(path, dep.install.user, dep.install.group)


def rotate(items, by):
    by %= len(items)
    return items[by:] + items[:by]


def bench(args):
    WORK.mkdir(parents=True, exist_ok=True)
    wheelhouse = CachedWheelhouse(WORK / "wheelhouse")
    cleanup = Cleanup()
    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "args": vars(args), "runs": []}
    out = Path(args.json or WORK / f"results-{time.strftime('%H%M%S')}.json")
    deployments = {}
    before = before_template(args.before) if args.before else None
    try:
        for name in args.stacks:
            index = list(STACKS).index(name) + 1
            print(f"deploying {name} ...", flush=True)
            deployments[name] = deploy(bench_case(index, name), wheelhouse, cleanup, args.reuse, before)
        variants = {
            name: [
                Variant(dep, v, EXPERIMENTS[v][name] if v in EXPERIMENTS else None)
                for v in args.variants
                if v not in EXPERIMENTS or name in EXPERIMENTS[v]
            ]
            for name, dep in deployments.items()
        }
        for round_number in range(args.rounds):
            overload = round_number == args.rounds - 1 and args.overload
            for name in rotate(list(variants), round_number):
                for variant in rotate(variants[name], round_number):
                    record = run_variant(variant, args, overload)
                    record.update(stack=name, variant=variant.name, round=round_number + 1)
                    results["runs"].append(record)
                    out.write_text(json.dumps(results, indent=1))
                    print(progress_line(record), flush=True)
    finally:
        for variant_list in locals().get("variants", {}).values():
            for variant in variant_list:
                if variant.app is not None or variant.front is not None:
                    variant.stop()
        if not args.keep:
            cleanup.run()
    print(f"\nresults: {out}\n")
    print(render(results))
    return results


def run_variant(variant, args, overload):
    record = {"paths": {}}
    try:
        record["cold_start_s"] = variant.start()
        for path in PATHS:
            record["paths"][path] = measure(variant, path, args.connections, args.duration)
        record["rss_mib"], record["pss_mib"] = memory(variant.app_pids())
        if overload:
            record["overload"] = measure(variant, "/", args.overload_connections, args.duration)
    except Exception as error:  # noqa: BLE001 - one broken variant is a row of the table, not the end of the run
        record["error"] = f"{error}"[:2000]
    try:
        variant.stop()
    except Exception as error:  # noqa: BLE001 - a stop that left a server behind voids the row
        record.setdefault("error", f"{error}"[:2000])
    return record


def progress_line(record):
    if "error" in record:
        return f"  round {record['round']} {record['stack']} {record['variant']}: ERROR {record['error'][:300]}"
    parts = [
        f"{p} {m['rps']:.0f}/s p99 {m['p99_ms']:.0f}ms oth {m['others_pct']:.0f}%" for p, m in record["paths"].items()
    ]
    text = f"  round {record['round']} {record['stack']:16} {record['variant']:10} " + " | ".join(parts)
    text += f" | cold {record['cold_start_s']:.2f}s"
    if "overload" in record:
        o = record["overload"]
        text += f" | overload {o['rps']:.0f}/s non-2xx {counts(o['non2xx'])} socket {counts(o['socket_errors'])}"
    return text


class CachedWheelhouse(Wheelhouse):
    """The end-to-end tier's wheelhouse, kept across runs (uWSGI and mod_wsgi take minutes to build)."""

    def ensure(self, package):
        names = [path.name.lower() for path in self.wheels.glob("*.whl")] if self.wheels.is_dir() else []
        if any(name.startswith(package.lower() + "-") for name in names):
            self.built.add(package)
        super().ensure(package)


# --- one-change experiments: "generated" with one edit of one file -----------------------

EXPERIMENTS = {}


def experiment(spec):
    """NAME:STACK:GLOB:OLD=>NEW (several with ;; between edits) -> registers variant NAME."""
    name, stack, rest = spec.split(":", 2)
    edits = []
    for part in rest.split(";;"):
        glob, change = part.split(":", 1)
        old, new = change.split("=>", 1)
        edits.append((glob, old.replace("\\n", "\n"), new.replace("\\n", "\n")))
    EXPERIMENTS.setdefault(f"generated:{name}", {})[stack] = edits
    return f"generated:{name}"


# --- the table ---------------------------------------------------------------------------------


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results):
    """stack -> variant -> medians over rounds (per path) and totals."""
    table = {}
    for record in results["runs"]:
        entry = table.setdefault(record["stack"], {}).setdefault(record["variant"], {"records": []})
        entry["records"].append(record)
    for stack in table.values():
        for entry in stack.values():
            good = [r for r in entry["records"] if "error" not in r]
            entry["errors"] = [r["error"] for r in entry["records"] if "error" in r]
            entry["rounds"] = len(good)
            entry["paths"] = {}
            for path in PATHS:
                runs = [r["paths"][path] for r in good if path in r["paths"]]
                if not runs:
                    continue
                non2xx, sockets = {}, {}
                for m in runs:
                    for k, v in m["non2xx"].items():
                        non2xx[int(k)] = non2xx.get(int(k), 0) + v
                    for k, v in m["socket_errors"].items():
                        sockets[k] = sockets.get(k, 0) + v
                entry["paths"][path] = {
                    "rps": median([m["rps"] for m in runs]),
                    "p50_ms": median([m["p50_ms"] for m in runs]),
                    "p99_ms": median([m["p99_ms"] for m in runs]),
                    "served": median([m.get("served_connections") for m in runs]),
                    "cpu_ms": median([m["app_cpu_ms_per_req"] for m in runs]),
                    "others_pct": median([m["others_pct"] for m in runs]),
                    "others_max": max(m["others_pct"] for m in runs),
                    "non2xx": non2xx,
                    "socket_errors": sockets,
                }
            entry["cold_s"] = median([r.get("cold_start_s") for r in good])
            entry["rss"] = median([r.get("rss_mib") for r in good])
            entry["pss"] = median([r.get("pss_mib") for r in good])
            loads = [r["overload"] for r in good if "overload" in r]
            entry["overload"] = loads[-1] if loads else None
            if entry["overload"]:  # status keys come back from JSON as strings
                entry["overload"]["non2xx"] = {int(k): v for k, v in entry["overload"]["non2xx"].items()}
    return table


def served(m):
    """Connections with a request in flight, of those wrk opened (unknown in results of older runs)."""
    return "-" if m.get("served") is None else f"{m['served']:.0f}"


def counts(mapping):
    return " ".join(f"{k}x{v}" for k, v in sorted(mapping.items(), key=str)) or "0"


def render(results):
    table = summarize(results)
    connections = results["args"]["connections"]
    lines = [
        f"serving benchmark, {results['started']}: wrk -t2 -c{results['args']['connections']} "
        f"-d{results['args']['duration']}s, medians of rotated rounds, SQLite, {os.cpu_count()} CPUs",
        "others = CPU other processes used during the run (% of the machine; median, max)",
        "",
        "| stack | path | variant | req/s | p50 ms | p99 ms | conns served | non-2xx | socket errors "
        "| app CPU ms/req | others % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stack, variants in table.items():
        for path in PATHS:
            for name, entry in variants.items():
                m = entry["paths"].get(path)
                if m is None:
                    lines.append(f"| {stack} | {path} | {name} | failed: {'; '.join(entry['errors'])[:120]} ||||||||")
                    continue
                lines.append(
                    f"| {stack} | `{path}` | {name} | {m['rps']:,.0f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | "
                    f"{served(m)} | "
                    f"{counts(m['non2xx'])} | {counts(m['socket_errors'])} | {m['cpu_ms']:.2f} | "
                    f"{m['others_pct']:.0f} (max {m['others_max']:.0f}) |"
                )
    lines += [
        "",
        "| stack | variant | rounds | RSS MiB | PSS MiB | cold start s "
        "| c200 on `/`: req/s | 502 | 503 | other non-2xx | socket errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stack, variants in table.items():
        for name, entry in variants.items():
            o = entry["overload"]
            over = "| | | | | |"
            if o:
                other = {k: v for k, v in o["non2xx"].items() if int(k) not in (502, 503)}
                over = (
                    f"| {o['rps']:,.0f} | {o['non2xx'].get(502, 0)} | {o['non2xx'].get(503, 0)} | "
                    f"{counts(other)} | {counts(o['socket_errors'])} |"
                )
            rss = f"{entry['rss']:.0f}" if entry["rss"] is not None else "-"
            pss = f"{entry['pss']:.0f}" if entry["pss"] is not None else "-"
            cold = f"{entry['cold_s']:.2f}" if entry["cold_s"] is not None else "-"
            lines.append(f"| {stack} | {name} | {entry['rounds']} | {rss} | {pss} | {cold} {over}")
    lines += [
        "",
        "| stack | path | variant | /hand | /tutorial | p99 /hand "
        "| bar (>=1.0 hand, >=1.2 tutorial, p99 <=2x, 0 non-2xx, every connection served) |",
        "|---|---|---|---|---|---|---|",
    ]
    for stack, variants in table.items():
        hand, tut = variants.get("hand"), variants.get("tutorial")
        if not (hand and tut):
            continue
        for name, gen in variants.items():
            if name in BASELINES:
                continue
            for path in PATHS:
                g, h, t = (e["paths"].get(path) for e in (gen, hand, tut))
                if not (g and h and t):
                    continue
                lines.append(bar_row(stack, path, name, g, h, t, connections))
    for stack, variants in table.items():
        for name in BASELINES:
            for path, m in variants.get(name, {}).get("paths", {}).items():
                if starved(m, connections):
                    lines.append(
                        f"\n{stack} {name} on `{path}`: only {m['served']:.0f} of {connections} connections had a "
                        "request in flight: the others waited unanswered, so its req/s is no fair baseline."
                    )
    return "\n".join(lines)


def starved(m, connections):
    """Fewer than 90 % of the connections had a request in flight: the rest waited for no answer."""
    return m.get("served") is not None and m["served"] < 0.9 * connections


def bar_row(stack, path, name, g, h, t, connections=50):
    """One row of the bar: throughput against hand and tutorial, p99 against hand, every client answered."""
    ratio_h, ratio_t, p99 = g["rps"] / h["rps"], g["rps"] / t["rps"], g["p99_ms"] / h["p99_ms"]
    ok = ratio_h >= 1.0 and ratio_t >= 1.2 and p99 <= 2 and not g["non2xx"] and not starved(g, connections)
    verdict = "met" if ok else "MISSED"
    if starved(g, connections):
        verdict += f" (only {g['served']:.0f} of {connections} connections served)"
    return f"| {stack} | `{path}` | {name} | {ratio_h:.2f} | {ratio_t:.2f} | {p99:.2f} | {verdict} |"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--overload-connections", type=int, default=200)
    parser.add_argument("--no-overload", dest="overload", action="store_false")
    parser.add_argument("--stacks", default=",".join(STACKS), help=f"comma-separated, from {', '.join(STACKS)}")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--try",
        dest="experiments",
        action="append",
        default=[],
        help="one-change variant of generated: NAME:STACK:FILEGLOB:OLD=>NEW",
    )
    parser.add_argument(
        "--before", metavar="REF", help="add the variant before: the configs the template generated at git REF"
    )
    parser.add_argument("--json", help="where to write the raw results (default /tmp/serve-bench/results-*.json)")
    parser.add_argument("--render", help="print the table of an earlier results file and exit")
    parser.add_argument("--reuse", action="store_true", help="reuse an earlier --keep install (re-bakes the configs)")
    parser.add_argument("--keep", action="store_true", help="leave the installs in place for --reuse")
    args = parser.parse_args(argv)
    if args.render:
        print(render(json.loads(Path(args.render).read_text())))
        return 0
    if os.geteuid() != 0 or not shutil.which("wrk"):
        sys.exit("run as root, with wrk installed (apt-get install wrk)")
    args.stacks = args.stacks.split(",")
    tried = (["before"] if args.before else []) + [experiment(spec) for spec in args.experiments]
    args.variants = list(dict.fromkeys(args.variants.split(",") + tried))
    bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
