"""Run the generated configs of the stacks that stay on this machine under the real servers.

supervisord, nginx and Apache are the real daemons, each with a main config of
the test that includes the generated file as it was generated. Stacks run by
systemd are deployed on test hosts instead (on_host.py).
"""

import pwd
import re
import signal
import time
from pathlib import Path

from helpers import connectable, wait_for

from .system import ProcessTree, make_dir, run, tail

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
