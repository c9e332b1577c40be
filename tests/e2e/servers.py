"""Run the generated configs under the real servers.

systemd is not running here, so a generated unit is checked with
`systemd-analyze verify` and then its own ExecStart runs the way systemd would
run it: as User/Group (setpriv), in WorkingDirectory, with the unit's
environment, RuntimeDirectory/StateDirectory made first, in a cgroup of its
own, with a notify socket when Type=notify. supervisord, nginx and Apache are
the real daemons, each with a main config of the test that includes the
generated file as it was generated.
"""

import os
import pwd
import re
import shlex
import signal
import socket
import time
from pathlib import Path

from helpers import Unit, connectable, read_env_file, wait_for

from .system import ProcessTree, make_dir, remove_tree, run, tail

SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APACHE_MODULES = Path("/usr/lib/apache2/modules")
# What Debian's apache2 package enables; the README's a2enmod adds the rest.
APACHE_DEBIAN_DEFAULT_MODULES = [
    "mpm_event",
    "access_compat",
    "alias",
    "auth_basic",
    "authn_core",
    "authn_file",
    "authz_core",
    "authz_host",
    "authz_user",
    "autoindex",
    "deflate",
    "dir",
    "env",
    "filter",
    "mime",
    "negotiation",
    "reqtimeout",
    "setenvif",
    "status",
]
# RHEL's httpd loads nearly every module from conf.modules.d/ by default.
APACHE_RHEL_EXTRA_MODULES = [
    "headers",
    "proxy",
    "proxy_http",
    "rewrite",
    "remoteip",
    "expires",
    "socache_shmcb",
    "unique_id",
    "version",
    "logio",
]


def parse_seconds(text):
    """systemd/supervisord time spans: '30', '30s', '1min 30s', '500ms'."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text.strip()):
        total += float(number) * units[unit or "s"]
    return total


def signal_number(name):
    name = name.strip().upper()
    if name.isdigit():
        return int(name)
    return getattr(signal, name if name.startswith("SIG") else "SIG" + name)


# --- systemd -----------------------------------------------------------------


def expand_specifiers(text, unit, user):
    specifiers = {
        "%%": "%",
        "%n": unit.name,
        "%N": unit.name.rsplit(".", 1)[0],
        "%p": unit.name.rsplit(".", 1)[0],
        "%t": "/run",
        "%S": "/var/lib",
        "%C": "/var/cache",
        "%L": "/var/log",
        "%E": "/etc",
        "%u": user,
        "%h": pwd.getpwnam(user).pw_dir,
        "%U": str(pwd.getpwnam(user).pw_uid),
    }

    def replace(match):
        if match.group(0) not in specifiers:
            raise AssertionError(f"{unit.name}: specifier {match.group(0)} not handled by the test harness")
        return specifiers[match.group(0)]

    return re.sub(r"%.", replace, text)


def expand_variables(words, env):
    """systemd's ExecStart expansion: ${VAR} stays one word, a lone $VAR splits on whitespace."""
    expanded = []
    for word in words:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            expanded += env.get(whole.group(1), "").split()
            continue
        expanded.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
    return expanded


class NotifySocket:
    """A NOTIFY_SOCKET like systemd's, to see READY=1 from a Type=notify service."""

    def __init__(self, directory):
        self.path = Path(directory) / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.path.chmod(0o777)
        self.messages = []

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode(errors="replace")
            except TimeoutError:
                break
            self.messages.append(data)
            if "READY=1" in data.split("\n"):
                return True
        return False

    def close(self):
        self.sock.close()


class SystemdService:
    """A generated service unit run as systemd would run it."""

    def __init__(self, unit_path, work_dir, cleanup):
        self.unit = Unit(unit_path)
        self.work_dir = Path(work_dir)
        self.cleanup = cleanup
        self.tree = None
        self.notify = None

    def verify(self):
        result = run(["systemd-analyze", "verify", self.unit.path], check=False)
        complaints = [line for line in (result.stdout + result.stderr).splitlines() if self.unit.name in line]
        assert result.returncode == 0 and not complaints, (
            f"systemd-analyze verify {self.unit.name} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )

    @property
    def user(self):
        return self.unit.get("User", "root")

    @property
    def group(self):
        return self.unit.get("Group") or pwd.getpwnam(self.user).pw_name

    def _directories(self, key, base, mode_key):
        mode = int(self.unit.get(mode_key, "0755"), 8)
        made = []
        for value in self.unit.all(key):
            for name in value.split():
                path = Path(base) / name
                if key == "RuntimeDirectory":
                    remove_tree(path)  # systemd makes it afresh at every start
                make_dir(path, self.cleanup, self.user, self.group, mode)
                made.append(path)
        return made

    def environment(self):
        account = pwd.getpwnam(self.user)
        env = {
            "PATH": SYSTEMD_PATH,
            "LANG": "C.UTF-8",
            "USER": self.user,
            "LOGNAME": self.user,
            "HOME": account.pw_dir,
            "SHELL": account.pw_shell,
            "INVOCATION_ID": os.urandom(16).hex(),
        }
        runtime = [f"/run/{n}" for v in self.unit.all("RuntimeDirectory") for n in v.split()]
        state = [f"/var/lib/{n}" for v in self.unit.all("StateDirectory") for n in v.split()]
        if runtime:
            env["RUNTIME_DIRECTORY"] = ":".join(runtime)
        if state:
            env["STATE_DIRECTORY"] = ":".join(state)
        for line in self.unit.all("Environment"):
            for assignment in shlex.split(expand_specifiers(line, self.unit, self.user)):
                key, value = assignment.split("=", 1)
                env[key] = value
        for line in self.unit.all("EnvironmentFile"):
            optional = line.startswith("-")
            path = Path(expand_specifiers(line.lstrip("-"), self.unit, self.user))
            if path.exists():
                env.update(read_env_file(path))
            else:
                assert optional, f"{self.unit.name}: EnvironmentFile {path} does not exist"
        return env

    def command(self, env):
        lines = self.unit.all("ExecStart")
        assert len(lines) == 1, f"{self.unit.name}: expected one ExecStart, got {lines}"
        line = lines[0].lstrip("@-:+!")
        words = expand_variables(shlex.split(expand_specifiers(line, self.unit, self.user)), env)
        assert words and words[0].startswith("/"), f"{self.unit.name}: ExecStart is not an absolute path: {line}"
        return words

    def start(self, name, log_path):
        """Create what systemd would, then run ExecStart; wait until the service is ready."""
        self.verify()
        self.runtime_dirs = self._directories("RuntimeDirectory", "/run", "RuntimeDirectoryMode")
        self.state_dirs = self._directories("StateDirectory", "/var/lib", "StateDirectoryMode")
        env = self.environment()
        if self.unit.get("Type") == "notify":
            notify_dir = make_dir(self.work_dir / "notify", self.cleanup, mode=0o755)
            self.notify = NotifySocket(notify_dir)
            self.cleanup.push("close notify socket", self.notify.close)
            env["NOTIFY_SOCKET"] = str(self.notify.path)
        argv = self.command(env)
        cwd = self.unit.get("WorkingDirectory", "~" if self.user != "root" else "/").lstrip("-")
        cwd = pwd.getpwnam(self.user).pw_dir if cwd == "~" else cwd
        umask = int(self.unit.get("UMask", "0022"), 8)
        privileges = ["setpriv", "--reuid", self.user, "--regid", self.group, "--init-groups"]
        if self.unit.get("NoNewPrivileges", "no").lower() in ("yes", "true", "1", "on"):
            privileges.append("--no-new-privs")
        if self.unit.get("CapabilityBoundingSet") == "" and self.user != "root":
            privileges += ["--bounding-set", "-all"]
        self.argv = argv
        self.tree = ProcessTree(name, privileges + ["--"] + argv, log_path, env=env, cwd=cwd, umask=umask)
        self.cleanup.push(f"stop {name}", self.tree.stop, signal.SIGKILL, 5)
        if self.notify is not None:
            ready = self.notify.wait_ready(min(parse_seconds(self.unit.get("TimeoutStartSec", "60")), 60))
            assert ready, (
                f"{self.unit.name}: Type=notify but no READY=1 within the start timeout "
                f"(messages: {self.notify.messages}; alive: {self.tree.alive()})"
            )
        return self.tree

    def stop_check(self, socket_path=None):
        """Stop as systemd would (KillSignal per KillMode, ExecStop if any) within TimeoutStopSec.

        Returns (seconds it took, timeout).
        """
        kill_signal = signal_number(self.unit.get("KillSignal", "SIGTERM"))
        kill_mode = self.unit.get("KillMode", "control-group")
        timeout = parse_seconds(self.unit.get("TimeoutStopSec", "90s"))
        start = time.monotonic()
        for line in self.unit.all("ExecStop"):
            words = shlex.split(line.lstrip("@-:+!").replace("$MAINPID", str(self.tree.pid)))
            run(words)
        if kill_mode == "control-group":
            self.tree.signal_all(kill_signal)
        else:
            self.tree.signal_main(kill_signal)
        elapsed = self.tree.wait_all(timeout)
        assert elapsed is not None, (
            f"{self.unit.name}: processes {self.tree.pids()} still running "
            f"{timeout:.0f} s (TimeoutStopSec) after {signal.Signals(kill_signal).name}"
        )
        if socket_path:
            assert not Path(socket_path).exists(), f"{socket_path} is left behind after the service stopped"
        return time.monotonic() - start, timeout


# --- supervisord -------------------------------------------------------------


class Supervisor:
    """A real supervisord with a test main config that includes the generated program file."""

    def __init__(self, config_dir, include, cleanup, user=None):
        self.dir = Path(config_dir)
        self.cleanup = cleanup
        self.user = user  # None: root
        self.conf = self.dir / "supervisord.conf"
        self.socket = self.dir / "supervisor.sock"
        self.log_path = self.dir / "supervisord.log"
        self.include = include
        self.tree = None

    def write_config(self):
        lines = [
            "[unix_http_server]",
            f"file = {self.socket}",
            "chmod = 0700",
            "",
            "[supervisord]",
            f"logfile = {self.log_path}",
            f"pidfile = {self.dir / 'supervisord.pid'}",
            f"childlogdir = {self.dir}",
            "nodaemon = true",
            "loglevel = info",
        ]
        if self.user is None:
            lines.append("user = root")
        lines += [
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl = unix://{self.socket}",
            "",
            "[include]",
            f"files = {self.include}",
            "",
        ]
        self.conf.write_text("\n".join(lines))

    def _as_user(self, command):
        if self.user is None:
            return command
        return ["setpriv", "--reuid", self.user, "--regid", self.user, "--init-groups", "--"] + command

    def _env(self):
        name = self.user or "root"
        home = pwd.getpwnam(name).pw_dir
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "USER": name, "LOGNAME": name, "LANG": "C.UTF-8"}

    def start(self, name, log_path):
        self.write_config()
        self.tree = ProcessTree(
            name,
            self._as_user(["supervisord", "-c", self.conf]),
            log_path,
            env=self._env(),
            cwd=pwd.getpwnam(self.user or "root").pw_dir,
        )
        self.cleanup.push(f"stop {name}", self.tree.stop, signal.SIGTERM, 40)
        assert wait_for(lambda: self.socket.exists() or not self.tree.alive(), 20), "supervisord did not start"
        assert self.tree.alive(), f"supervisord exited:\n{tail(log_path)}\n{tail(self.log_path)}"

    def ctl(self, *args, check=False):
        return run(self._as_user(["supervisorctl", "-c", self.conf, *args]), check=check, env=self._env())

    def wait_running(self, program, timeout=30):
        def state():
            out = self.ctl("status", program).stdout
            return next((word for word in ("RUNNING", "FATAL", "EXITED") if word in out), None)

        result = wait_for(state, timeout, 0.2)
        assert result == "RUNNING", f"program {program} is not RUNNING: {self.ctl('status', program).stdout}"
        return int(self.ctl("pid", program).stdout.strip())

    def program_pids(self):
        return [pid for pid in self.tree.pids() if pid != self.main_pid()]

    def main_pid(self):
        """supervisord's own PID (setpriv execs it, so it is the tree's first process)."""
        return self.tree.pid

    def stop_check(self, program, options, socket_path=None):
        """`supervisorctl stop` sends stopsignal (to the group with stopasgroup); all must exit in stopwaitsecs."""
        timeout = float(options.get("stopwaitsecs", "10"))
        start = time.monotonic()
        result = self.ctl("stop", program)
        stopped = wait_for(lambda: not self.program_pids(), timeout + 5, 0.05)
        elapsed = time.monotonic() - start
        log = self.log_path.read_text(errors="replace")
        assert "SIGKILL" not in log, f"supervisord had to SIGKILL {program}:\n{tail(self.log_path)}"
        assert stopped and elapsed <= timeout, (
            f"{program}: processes {self.program_pids()} still running {elapsed:.1f} s after "
            f"`supervisorctl stop` (stopwaitsecs={timeout:.0f}): {result.stdout}"
        )
        if socket_path:
            assert not Path(socket_path).exists(), f"{socket_path} is left behind after {program} stopped"
        return elapsed, timeout


# --- nginx -------------------------------------------------------------------


class Nginx:
    """The real nginx with a test main config (`user <front user>;`) including the site file."""

    def __init__(self, prefix, user, group, includes, cleanup):
        self.prefix = Path(prefix)
        self.user, self.group = user, group
        self.includes = includes
        self.cleanup = cleanup
        self.conf = self.prefix / "nginx.conf"
        self.error_log = self.prefix / "error.log"
        self.access_log = self.prefix / "access.log"
        self.tree = None

    def write_config(self):
        self.prefix.mkdir(parents=True, exist_ok=True)
        # Relative includes in a site file resolve against the main config's folder, as in /etc/nginx.
        for name in ("mime.types", "uwsgi_params", "proxy_params", "snippets", "fastcgi_params", "scgi_params"):
            link = self.prefix / name
            if not link.exists() and Path("/etc/nginx", name).exists():
                link.symlink_to(Path("/etc/nginx", name))
        includes = "\n".join(f"    include {path};" for path in self.includes)
        self.conf.write_text(f"""user {self.user} {self.group};
worker_processes 1;
daemon off;
pid {self.prefix}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    include mime.types;
    default_type application/octet-stream;
    access_log {self.access_log};
    sendfile on;
{includes}
}}
""")

    def command(self, *extra):
        return ["nginx", "-c", self.conf, "-p", self.prefix, "-e", self.error_log, *extra]

    def start(self, name, port):
        self.write_config()
        run(self.command("-t"))
        self.tree = ProcessTree(name, self.command(), self.prefix / "nginx.out")
        self.cleanup.push(f"stop {name}", self.tree.stop, signal.SIGQUIT, 15)
        assert wait_for(lambda: connectable(("127.0.0.1", port)) or not self.tree.alive(), 15), "nginx did not listen"
        assert self.tree.alive(), f"nginx exited:\n{tail(self.prefix / 'nginx.out')}\n{tail(self.error_log)}"

    def logs(self):
        return {
            "nginx error.log": tail(self.error_log),
            "nginx access.log": tail(self.access_log, 30),
            "nginx output": tail(self.prefix / "nginx.out"),
        }


# --- Apache ------------------------------------------------------------------


class Apache:
    """The real Apache (apache2 -f FILE -DFOREGROUND) with a test main config including the site file."""

    def __init__(self, prefix, user, group, site, port, modules, extra_lines, cleanup):
        self.prefix = Path(prefix)
        self.user, self.group = user, group
        self.site = Path(site)
        self.port = port
        self.modules = modules
        self.extra_lines = extra_lines
        self.cleanup = cleanup
        self.conf = self.prefix / "apache2.conf"
        self.error_log = self.prefix / "logs" / "error.log"
        self.tree = None

    def environment(self):
        """Debian's /etc/apache2/envvars, with the run and log folders moved into the test prefix."""
        return {
            "PATH": SYSTEMD_PATH,
            "LANG": "C",
            "APACHE_RUN_USER": self.user,
            "APACHE_RUN_GROUP": self.group,
            "APACHE_RUN_DIR": str(self.prefix / "run"),
            "APACHE_PID_FILE": str(self.prefix / "run" / "apache2.pid"),
            "APACHE_LOCK_DIR": str(self.prefix / "lock"),
            "APACHE_LOG_DIR": str(self.prefix / "logs"),
        }

    def log_dirs(self):
        """Folders the site's ErrorLog/CustomLog write to (as a package would have made them)."""
        env = self.environment()
        dirs = []
        for match in re.finditer(r"^\s*(?:ErrorLog|CustomLog)\s+\"?([^\s\"]+)", self.site.read_text(), re.M):
            path = re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), m.group(0)), match.group(1))
            if path.startswith("|") or path.startswith("syslog"):
                continue
            path = Path(path) if path.startswith("/") else self.prefix / path
            dirs.append(path.parent)
        return dirs

    def write_config(self):
        for sub in ("run", "lock", "logs"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        for directory in self.log_dirs():
            make_dir(directory, self.cleanup, mode=0o755) if not directory.exists() else None
        site_text = self.site.read_text()
        listen = [] if re.search(r"^\s*Listen\s", site_text, re.M) else [f"Listen {self.port}"]
        modules = [f"LoadModule {m}_module {APACHE_MODULES / f'mod_{m}.so'}" for m in self.modules]
        self.conf.write_text(
            "\n".join(
                [
                    f"ServerRoot {self.prefix}",
                    f"DefaultRuntimeDir {self.prefix / 'run'}",
                    f"PidFile {self.prefix / 'run' / 'apache2.pid'}",
                    f"Mutex file:{self.prefix / 'lock'} default",
                    "ServerName localhost",
                    f"User {self.user}",
                    f"Group {self.group}",
                    f"ErrorLog {self.error_log}",
                    "LogLevel info",
                    *modules,
                    "TypesConfig /etc/mime.types",
                    'LogFormat "%v:%p %h %l %u %t \\"%r\\" %>s %O '
                    '\\"%{Referer}i\\" \\"%{User-Agent}i\\"" vhost_combined',
                    'LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined',
                    'LogFormat "%h %l %u %t \\"%r\\" %>s %O" common',
                    f"CustomLog {self.prefix / 'logs' / 'access.log'} combined",
                    "<Directory />",
                    "    AllowOverride None",
                    "    Require all denied",
                    "</Directory>",
                    *listen,
                    *self.extra_lines,
                    f"Include {self.site}",
                    "",
                ]
            )
        )

    def start(self, name):
        self.write_config()
        run(["apache2", "-t", "-f", self.conf], env=self.environment())
        self.tree = ProcessTree(
            name, ["apache2", "-f", self.conf, "-DFOREGROUND"], self.prefix / "apache2.out", env=self.environment()
        )
        self.cleanup.push(f"stop {name}", self.tree.stop, signal.SIGTERM, 20)
        assert wait_for(lambda: connectable(("127.0.0.1", self.port)) or not self.tree.alive(), 20), (
            "Apache did not listen"
        )
        assert self.tree.alive(), f"Apache exited:\n{self.logs()}"

    def logs(self):
        found = {"apache output": tail(self.prefix / "apache2.out")}
        for directory in [self.prefix / "logs", *self.log_dirs()]:
            for path in sorted(Path(directory).glob("*.log")):
                if path.name.endswith(".log") and (
                    directory == self.prefix / "logs"
                    or self.site.stem in path.name
                    or path.stat().st_mtime > time.time() - 3600
                ):
                    found[f"apache {path}"] = tail(path, 40)
        return found
