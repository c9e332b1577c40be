"""The app server's files: gunicorn.conf.py, the uWSGI ini, the systemd unit, the supervisord program
and the tmpfiles.d entry. Rendered clean, accepted by the real tools, in step with each other and with
docs/design.md, and runnable as written.

Every stack is baked with install_dir equal to the directory it is baked into, under a fresh directory
in /opt (rootless ones in /home), so the paths the files name exist: systemd-analyze checks ExecStart,
gunicorn checks chdir, and the run tests start the very command line the unit or the program holds.
"""

import configparser
import functools
import json
import os
import re
import runpy
import secrets
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import tomllib
from datetime import timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from combinations import SUPPORTED_COMBINATIONS, context, default_tls, stack_id
from helpers import (
    Client,
    Unit,
    bake,
    program_section,
    read_env_file,
    read_response,
    render_problems,
    require_tool,
    unavailable,
    wait_for,
)

# What the design fixes (docs/design.md, "Timeouts and limits").
APP_TIMEOUT = 30
FRONT_READ_TIMEOUT = 60
GRACEFUL_WINDOW = 25
STOP_TIMEOUT = 30
MAX_EXPOSURE = 2.5
DOMAIN = "example.com"


def app_server_stacks():
    """Supported stacks with an app server of ours, plus rootless and sub-path ones.

    The database only changes the systemd unit (its ordering and StateDirectory=), so supervisord
    stacks are baked with one database.
    """
    stacks = [
        dict(c)
        for c in SUPPORTED_COMBINATIONS
        if c["wsgi_server"] != "mod_wsgi"
        and (c["process_manager"] == "systemd" or c["database"] == "sqlite")
        and c["tls"] == default_tls(c)  # TLS changes none of the app server's files
    ]
    rootless = dict(web_server="none", process_manager="supervisord", database="sqlite", rootless=True)
    stacks += [
        dict(rootless, wsgi_server="uwsgi", os_family="debian", url_prefix="/app/"),
        dict(rootless, wsgi_server="gunicorn", os_family="rhel"),
        dict(
            wsgi_server="gunicorn",
            web_server="nginx",
            process_manager="systemd",
            os_family="debian",
            database="postgresql",
            url_prefix="/sub/path",
        ),
        dict(
            wsgi_server="uwsgi",
            web_server="apache",
            process_manager="supervisord",
            os_family="rhel",
            database="sqlite",
            url_prefix="/my.app",
        ),
    ]
    return stacks


def app_id(answers):
    words = [stack_id(answers)]
    if answers.get("url_prefix", "/") != "/":
        words.append("prefix:" + answers["url_prefix"].strip("/").replace("/", "-"))
    return "-".join(words)


STACKS = app_server_stacks()
SYSTEMD_STACKS = [s for s in STACKS if s["process_manager"] == "systemd"]
SUPERVISORD_STACKS = [s for s in STACKS if s["process_manager"] == "supervisord"]
GUNICORN_STACKS = [s for s in STACKS if s["wsgi_server"] == "gunicorn"]
UWSGI_STACKS = [s for s in STACKS if s["wsgi_server"] == "uwsgi"]


# --- baking ---------------------------------------------------------------------------------------


class Project:
    """One baked stack: its answers, the derived values its files were rendered with, paths and the
    files this module checks."""

    def __init__(self, path, answers, rendered):
        self.path = path
        self.answers = answers
        self.rendered = rendered  # the cookiecutter context of the bake: answers and __ values
        self.slug = path.name
        self.socket = rendered["__socket"] or None
        self.front_group = rendered["__front_group"] or None
        self.prefix = rendered["__prefix"]
        self.gunicorn_conf = self.file("deploy/gunicorn/gunicorn.conf.py")
        self.uwsgi_ini = self.file("deploy/uwsgi/{slug}.ini")
        self.unit = self.file("deploy/systemd/{slug}.service")
        self.socket_unit = self.file("deploy/systemd/{slug}.socket")
        self.backup_units = [
            self.file("deploy/backup/{slug}-backup.service"),
            self.file("deploy/backup/{slug}-backup.timer"),
        ]
        self.program = self.file("deploy/supervisord/{slug}.conf")
        self.tmpfiles = self.file("deploy/tmpfiles/{slug}.conf")

    def file(self, relative):
        return self.path / relative.format(slug=self.slug)

    def owned_files(self):
        """This module's files that the stack keeps."""
        candidates = (self.gunicorn_conf, self.uwsgi_ini, self.unit, self.program, self.tmpfiles)
        return [path for path in candidates if path.exists()]

    def expected_command(self):
        """The one app-server command line, for the unit and the program alike."""
        command = shlex.split(self.rendered["__app_command"])
        assert command[0] == f"{self.path}/.venv/bin/{self.answers['wsgi_server']}"
        assert command[-1] == f"{self.path}/{self.rendered['__app_config']}" and self.file(command[-1]).is_file()
        return command

    def environment(self):
        """The production settings the post-generation hook wrote, as EnvironmentFile= passes them."""
        return read_env_file(self.path / ".env")


def make_root(parent, cleanup):
    """A fresh directory under /opt or /home, removed at the end (pre-gen refuses /tmp)."""
    root = Path(parent) / f"flask-stack-test-{secrets.token_hex(4)}"
    try:
        root.mkdir(mode=0o755)
    except PermissionError:
        unavailable(f"these tests bake into {parent}, which needs root (as in CI)")
    cleanup.append(root)
    return root


@pytest.fixture(scope="session")
def roots():
    """Where system and rootless stacks are baked: {rootless: directory}."""
    made = []
    yield {False: make_root("/opt", made), True: make_root("/home", made)}
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


def bake_stack(cookies, root, answers, slug):
    """Bake answers with install_dir = the project's own directory, a fresh one under root.

    cookies bakes below pytest's temporary directory, which is no install_dir (pre-gen refuses /tmp),
    so the project moves to its install_dir once baked.
    """
    path = root / f"{len(list(root.iterdir())):03d}" / slug
    chosen = dict(answers, project_slug=slug, install_dir=str(path))
    baked_path = bake(cookies, **chosen)
    assert baked_path.name == slug
    path.parent.mkdir()
    shutil.move(baked_path, path)
    return Project(path, answers, context(**chosen))


@pytest.fixture(scope="session")
def baked(roots, cookies_session):
    """bake(answers) once per stack in this session, then make what the install steps make and the
    checks need: ExecStart's program (as /bin/true) and supervisord's log directory."""
    slug = f"fst_{secrets.token_hex(3)}"
    system_logs = Path("/var/log") / slug
    projects = {}

    def get(answers):
        key = app_id(answers)
        if key not in projects:
            project = bake_stack(cookies_session, roots[bool(answers.get("rootless"))], answers, slug)
            (project.path / ".venv" / "bin").mkdir(parents=True)
            (project.path / ".venv" / "bin" / answers["wsgi_server"]).symlink_to("/bin/true")
            (project.path / ".venv" / "bin" / "python").symlink_to("/bin/true")  # the backup's ExecStart
            logs = project.path / "var" / "log" if answers.get("rootless") else system_logs
            logs.mkdir(parents=True, exist_ok=True)
            projects[key] = project
        return projects[key]

    yield get
    shutil.rmtree(system_logs, ignore_errors=True)


# --- readers --------------------------------------------------------------------------------------


def uwsgi_settings(path):
    """The [uwsgi] section; strict: a repeated key is an error (this ini repeats none)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True, comment_prefixes=(";", "#"))
    parser.read(path)
    assert parser.sections() == ["uwsgi"]
    return parser["uwsgi"]


def gunicorn_settings(path):
    """Load gunicorn.conf.py the way gunicorn does, through its validators; refuse unknown names.

    gunicorn ignores names it does not know (and --check-config with it), so a typo would pass silently.
    """
    from gunicorn.config import Config

    config = Config()
    names = {
        key: value
        for key, value in runpy.run_path(str(path)).items()
        if not key.startswith("__")
        and not isinstance(value, ModuleType)
        and not (isinstance(value, type) and key not in config.settings)  # the logger class and its base
    }
    assert set(names) <= set(config.settings), f"not gunicorn settings: {set(names) - set(config.settings)}"
    for key, value in names.items():
        config.set(key, value)
    return config


SUPERVISORD_PARSE = """
import json, sys
from supervisor import options
# The service user is created at install time: accept its name here.
options.name_to_uid = lambda name: 65534
server = options.ServerOptions()
server.realize(["-c", sys.argv[1]])
[group] = server.process_group_configs
[program] = group.process_configs
fields = ("name command directory uid environment autostart autorestart startsecs stopsignal stopwaitsecs "
          "stopasgroup killasgroup redirect_stderr stdout_logfile stdout_logfile_maxbytes stdout_logfile_backups")
values = {field: getattr(program, field) for field in fields.split()}
values["parse_warnings"] = server.parse_warnings
# autorestart=true is the class RestartUnconditionally
print(json.dumps(values, default=lambda value: getattr(value, "__name__", str(value))))
"""


@functools.cache
def supervisord_settings(program):
    """Parse a program file with supervisord's own ServerOptions, included from a minimal main config."""
    supervisord = require_tool("supervisord", "parses the generated program")
    python = Path(supervisord).read_text().splitlines()[0].removeprefix("#!").split()
    work = program.parents[3]  # the directory the project was baked into
    main = work / "supervisord.conf"
    main.write_text(
        f"[supervisord]\nlogfile = {work}/supervisord.log\npidfile = {work}/supervisord.pid\n"
        f"[include]\nfiles = {program}\n"
    )
    result = subprocess.run([*python, "-c", SUPERVISORD_PARSE, str(main)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# --- every file: clean rendering ------------------------------------------------------------------


@pytest.mark.parametrize("answers", STACKS, ids=app_id)
def test_rendered_files_are_clean(baked, answers):
    """No template tags left, no blank-line runs, no trailing spaces, one final newline."""
    project = baked(answers)
    assert project.owned_files()
    for path in project.owned_files():
        text = path.read_text()
        assert render_problems(path, text) == [], path
        assert stray_blank_line_runs(path, text) == [], path


def stray_blank_line_runs(path, text):
    """Offsets of two blank lines in a row, except where Python puts them: around a top-level class or def."""
    runs = []
    for match in re.finditer(r"\n{3,}", text):
        last_line = text[: match.start()].rsplit("\n", 1)[-1]
        around_definition = text[match.end() :].startswith(("class ", "def ", "@")) or last_line.startswith(" ")
        if path.suffix != ".py" or len(match.group()) > 3 or not around_definition:
            runs.append(match.start())
    return runs


# --- gunicorn -------------------------------------------------------------------------------------


@pytest.mark.parametrize("answers", GUNICORN_STACKS, ids=app_id)
def test_gunicorn_settings(baked, answers):
    """The values gunicorn loads: bind, workers, the timeout ladder, trust, logs, mount point."""
    require_tool("gunicorn", "loads gunicorn.conf.py through gunicorn's own settings")
    project = baked(answers)
    config = gunicorn_settings(project.gunicorn_conf)

    if answers["process_manager"] == "systemd":
        # The socket unit binds; gunicorn takes the socket systemd passes (LISTEN_FDS) and binds nothing itself.
        assert "bind" not in runpy.run_path(str(project.gunicorn_conf))
    elif project.socket:
        assert config.bind == [f"unix:{project.socket}"]
    else:
        assert config.bind == ["127.0.0.1:8000"]
    assert config.wsgi_app == "wsgi:app"
    assert config.chdir == str(project.path)
    assert config.workers == 2 * len(os.sched_getaffinity(0)) + 1
    assert config.timeout == APP_TIMEOUT < FRONT_READ_TIMEOUT
    assert config.graceful_timeout == GRACEFUL_WINDOW
    assert config.graceful_timeout + 5 <= STOP_TIMEOUT
    assert config.max_requests > 0 and 0 < config.max_requests_jitter < config.max_requests
    assert config.worker_tmp_dir == "/dev/shm"
    if project.socket and answers["process_manager"] == "supervisord":
        # gunicorn chowns its socket to its own group, so the front server connects as "other";
        # the 2750 directory from tmpfiles.d keeps everyone else out (test_tmpfiles_entry).
        assert config.umask == 0
    else:
        assert config.umask == 0o007
    assert config.accesslog == "-" and config.errorlog == "-"
    assert "%({x-forwarded-for}i)s" in config.access_log_format
    assert config.forwarded_allow_ips == ["127.0.0.1"]
    assert config.forwarder_headers == []
    assert config.daemon is False and config.preload_app is False
    assert config.control_socket_disable is True
    assert config.env == ({"SCRIPT_NAME": project.prefix} if project.prefix else {})
    assert config.logger_class.__name__ == "FailedRequestsLog"


@pytest.mark.parametrize("answers", GUNICORN_STACKS, ids=app_id)
def test_gunicorn_access_log_shows_failed_requests_only(baked, answers, capsys):
    """The access log gets a line, with the client's forwarded address, for each 4xx and 5xx and for nothing else."""
    require_tool("gunicorn", "logs through gunicorn's own logger")
    config = gunicorn_settings(baked(answers).gunicorn_conf)
    log = config.logger_class(config)
    request = SimpleNamespace(headers=[("X-FORWARDED-FOR", "203.0.113.7")])
    for status in ("200 OK", "302 FOUND", "304 NOT MODIFIED", "404 NOT FOUND", "503 SERVICE UNAVAILABLE"):
        path = "/" + status.split()[0]
        environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "SERVER_PROTOCOL": "HTTP/1.0", "PATH_INFO": path}
        log.access(SimpleNamespace(status=status, headers=[], sent=10), request, environ, timedelta(milliseconds=3))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split('"')[1] for line in lines] == ["GET /404 HTTP/1.0", "GET /503 HTTP/1.0"], lines
    assert all(line.startswith("203.0.113.7 ") and line.endswith(" 3ms") for line in lines), lines


# --- uWSGI ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("answers", UWSGI_STACKS, ids=app_id)
def test_uwsgi_settings(baked, answers):
    """The ini's values: strict, the app, the socket each front server speaks to, limits, stop signal."""
    project = baked(answers)
    ini = uwsgi_settings(project.uwsgi_ini)
    for flag in (
        "strict",
        "master",
        "need-app",
        "single-interpreter",
        "enable-threads",
        "auto-procname",
        "die-on-term",
        "disable-logging",
        "log-4xx",
        "log-5xx",
    ):
        assert ini[flag] == "true", flag
    assert ini["chdir"] == str(project.path)
    assert ini["virtualenv"] == f"{project.path}/.venv"
    if project.prefix:
        assert ini["mount"] == f"{project.prefix}=wsgi:app" and ini["manage-script-name"] == "true"
        assert "module" not in ini
    else:
        assert ini["module"] == "wsgi:app" and "mount" not in ini

    sockets = {key: ini[key] for key in ("socket", "http-socket") if key in ini}
    if not project.socket:
        assert sockets == {"http-socket": "127.0.0.1:8000"}
    elif project.rendered["__http_proxy"]:
        assert sockets == {"http-socket": project.socket}  # e.g. Apache's mod_proxy_http speaks HTTP
    else:
        assert sockets == {"socket": project.socket}  # the uwsgi protocol of nginx's uwsgi_pass
    if project.socket and answers["process_manager"] == "supervisord":
        assert ini["chmod-socket"] == "660" and ini["vacuum"] == "true"
    else:
        # Under systemd the socket unit makes the socket and keeps it: vacuum would delete it under systemd's feet.
        assert "chmod-socket" not in ini and "vacuum" not in ini
    assert ("log-x-forwarded-for" in ini) == bool(project.rendered["__http_proxy"])
    # The socket systemd passes gets uWSGI's default protocol: HTTP where the front speaks HTTP.
    http_default = answers["process_manager"] == "systemd" and project.rendered["__http_proxy"]
    assert ini.get("protocol") == ("http" if http_default else None)

    assert int(ini["harakiri"]) == APP_TIMEOUT < FRONT_READ_TIMEOUT
    assert int(ini["worker-reload-mercy"]) == GRACEFUL_WINDOW
    assert int(ini["buffer-size"]) == 32768
    for limit in ("post-buffering", "max-requests", "max-worker-lifetime"):
        assert int(ini[limit]) > 0, limit
    # Recycling costs under 2 % of the throughput: a respawn per 50,000 requests, no memory check per request.
    assert int(ini["max-requests"]) >= 50000 and "reload-on-rss" not in ini
    if answers.get("rootless"):
        assert "listen" not in ini  # a shared host's net.core.somaxconn may be lower: uWSGI would refuse to start
    elif answers["process_manager"] == "systemd":
        assert "listen" not in ini  # the socket unit's Backlog= sizes the queue of the socket uWSGI inherits
    else:
        assert int(ini["listen"]) == 1024  # a burst past uWSGI's default 100 got 502 from the front server
    assert ini["processes"] == "%(%k * 2 + 1)"
    assert ini["hook-master-start"] == "unix_signal:15 gracefully_kill_them_all"
    # pip's uWSGI has Python built in; secrets and daemonizing have no place here; with lazy-apps a TERM
    # that arrives while workers import the app never stops them.
    for absent in ("plugins", "plugin", "daemonize", "env", "uid", "gid", "pidfile", "lazy-apps"):
        assert absent not in ini, absent


# --- systemd --------------------------------------------------------------------------------------


@pytest.mark.parametrize("answers", SYSTEMD_STACKS, ids=app_id)
def test_systemd_unit_verifies(baked, answers):
    """systemd-analyze verify accepts every unit of deploy/systemd and deploy/backup (syntax, and that
    ExecStart's program exists)."""
    analyze = require_tool("systemd-analyze", "verifies and scores the generated unit")
    units = [str(path) for path in project_units(baked(answers))]
    assert len(units) == 4, units
    result = subprocess.run([analyze, "verify", *units], check=False, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def project_units(project):
    """Every systemd unit the project ships: the app's service and socket, the backup's service and timer."""
    return sorted(project.path.glob("deploy/systemd/*")) + sorted(project.path.glob("deploy/backup/*-backup.*"))


# The backup units come with every root install, mod_wsgi's and supervisord's included.
UNIT_STACKS = (
    SYSTEMD_STACKS
    + [
        dict(wsgi_server="mod_wsgi", web_server="apache", process_manager="systemd", os_family=os_family, database=db)
        for os_family in ("debian", "rhel")
        for db in ("sqlite", "postgresql", "mysql")
    ]
    + [s for s in SUPERVISORD_STACKS if not s.get("rootless")][:2]
)


@pytest.mark.parametrize("answers", UNIT_STACKS, ids=app_id)
def test_systemd_unit_is_hardened(baked, answers):
    """systemd-analyze security --offline=true scores every service the project ships at 2.5 or lower."""
    analyze = require_tool("systemd-analyze", "verifies and scores the generated unit")
    services = [path for path in project_units(baked(answers)) if path.suffix == ".service"]
    assert len(services) == (
        1 if answers["wsgi_server"] == "mod_wsgi" or answers["process_manager"] != "systemd" else 2
    )
    for service in services:
        result = subprocess.run(
            [analyze, "security", "--offline=true", str(service)], check=False, capture_output=True, text=True
        )
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert match, result.stdout + result.stderr
        assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


@pytest.mark.parametrize("answers", SYSTEMD_STACKS, ids=app_id)
def test_systemd_unit_settings(baked, answers):
    """User, group, directories, environment file, the command line, and a graceful stop."""
    project = baked(answers)
    unit = Unit(project.unit)
    service = unit.section("Service")
    assert service["Type"] == "notify"
    assert service["User"] == service["Group"] == project.slug
    assert service["WorkingDirectory"] == str(project.path)
    assert service["EnvironmentFile"] == project.rendered["__env_file"] == f"/etc/{project.slug}/{project.slug}.env"
    assert shlex.split(service["ExecStart"]) == project.expected_command()
    assert service["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    assert service["KillMode"] == "mixed" and service["KillSignal"] == "SIGTERM"
    assert int(service["TimeoutStopSec"]) == STOP_TIMEOUT
    assert service["Restart"] == "on-failure"
    assert unit.get("StartLimitBurst", section="Unit") and unit.get("StartLimitIntervalSec", section="Unit")
    assert unit.get("WantedBy", section="Install") == "multi-user.target"
    # The socket unit holds the listening socket; the service has no directory of its own in /run that a
    # stop would remove with the socket in it.
    assert "RuntimeDirectory" not in service
    assert (
        unit.get("Requires", section="Unit")
        == unit.get("After", section="Unit").split()[-1]
        == f"{project.slug}.socket"
    )
    socket_unit = Unit(project.socket_unit).section("Socket")
    assert int(socket_unit["Backlog"]) == 1024  # a queue of 100 filled at c200 and the front server answered 502
    if project.socket:
        assert socket_unit["ListenStream"] == project.socket
        assert (socket_unit["SocketGroup"], socket_unit["SocketMode"]) == (project.front_group, "0660")
        assert socket_unit["RemoveOnStop"] == "yes"
    else:
        assert socket_unit["ListenStream"] == f"127.0.0.1:{answers.get('http_port', '8000')}"
    if answers["database"] == "sqlite":
        assert (service["StateDirectory"], service["StateDirectoryMode"]) == (project.slug, "0700")
    else:
        assert "StateDirectory" not in service
    # Only RuntimeDirectory= and StateDirectory= are writable; nothing else needs to be.
    assert service["ProtectSystem"] == "strict" and "ReadWritePaths" not in service
    assert service["CapabilityBoundingSet"] == ""
    assert service["SystemCallFilter"] == "@system-service"


# --- supervisord ----------------------------------------------------------------------------------


@pytest.mark.parametrize("answers", SUPERVISORD_STACKS, ids=app_id)
def test_supervisord_program(baked, answers):
    """supervisord itself parses the program: command, user, environment, stop, restarts, logs."""
    project = baked(answers)
    program = supervisord_settings(project.program)
    assert program["parse_warnings"] == []
    assert program["name"] == project.slug
    assert shlex.split(program["command"]) == project.expected_command()
    assert program["directory"] == str(project.path)
    if answers.get("rootless"):
        # The user's own supervisord runs as them, with their HOME and USER.
        assert program["uid"] is None and program["environment"] == {}
        assert project.rendered["__log_dir"] == f"{project.path}/var/log"
    else:
        assert program["uid"] == 65534
        assert program["environment"] == {"HOME": str(project.path), "USER": project.slug}
        assert project.rendered["__log_dir"] == f"/var/log/{project.slug}"
    assert program["stopsignal"] == signal.SIGTERM
    assert program["stopwaitsecs"] == STOP_TIMEOUT > GRACEFUL_WINDOW
    assert program["stopasgroup"] is True and program["killasgroup"] is True
    assert program["autostart"] is True and program["autorestart"] == "RestartUnconditionally"
    assert program["startsecs"] > 0
    assert program["redirect_stderr"] is True
    assert program["stdout_logfile"] == f"{project.rendered['__log_dir']}/{answers['wsgi_server']}.log"
    assert 0 < program["stdout_logfile_maxbytes"] and program["stdout_logfile_backups"] > 0


@pytest.mark.parametrize("answers", SUPERVISORD_STACKS, ids=app_id)
def test_tmpfiles_entry(baked, answers):
    """Under supervisord a socket's directory comes from tmpfiles.d: setgid, the front server's group."""
    project = baked(answers)
    if not project.socket:
        assert not project.tmpfiles.exists()
        return
    entries = [line.split() for line in project.tmpfiles.read_text().splitlines() if not line.startswith("#")]
    assert entries == [["d", project.rendered["__run_dir"], "2750", project.slug, project.front_group, "-"]]
    assert Path(project.socket).parent == Path(entries[0][1])


# --- across the files -----------------------------------------------------------------------------


@pytest.mark.parametrize("answers", STACKS, ids=app_id)
def test_stop_signal_pairing(baked, answers):
    """TERM stops gracefully everywhere: uWSGI has die-on-term, the manager sends TERM and waits longer."""
    project = baked(answers)
    if answers["wsgi_server"] == "uwsgi":
        ini = uwsgi_settings(project.uwsgi_ini)
        assert ini["die-on-term"] == "true"
        assert ini["hook-master-start"].split() == [f"unix_signal:{int(signal.SIGTERM)}", "gracefully_kill_them_all"]
        graceful = int(ini["worker-reload-mercy"])
    else:
        require_tool("gunicorn", "loads gunicorn.conf.py through gunicorn's own settings")
        graceful = gunicorn_settings(project.gunicorn_conf).graceful_timeout
    if answers["process_manager"] == "systemd":
        unit = Unit(project.unit)
        assert unit.get("KillSignal") == "SIGTERM"
        assert graceful + 5 <= int(unit.get("TimeoutStopSec"))
    else:
        program = supervisord_settings(project.program)
        assert program["stopsignal"] == signal.SIGTERM
        assert graceful < program["stopwaitsecs"]


@pytest.mark.parametrize("answers", [s for s in STACKS if s["web_server"] != "none"], ids=app_id)
def test_front_server_names_the_same_socket(baked, answers):
    """The socket the app server binds is the one the front server's site file proxies to."""
    project = baked(answers)
    site = project.file(f"deploy/{answers['web_server']}/{{slug}}.conf")
    assert project.socket in site.read_text()


# --- run it ---------------------------------------------------------------------------------------

RUN_STACKS = [
    # RHEL, uWSGI on a unix socket speaking the uwsgi protocol to nginx, under systemd.
    dict(wsgi_server="uwsgi", web_server="nginx", process_manager="systemd", os_family="rhel", database="sqlite"),
    # uWSGI speaking HTTP on a unix socket to Apache, under systemd (the socket unit's socket) and supervisord.
    dict(wsgi_server="uwsgi", web_server="apache", process_manager="systemd", os_family="debian", database="sqlite"),
    dict(
        wsgi_server="uwsgi", web_server="apache", process_manager="supervisord", os_family="debian", database="sqlite"
    ),
    # Rootless: uWSGI on 127.0.0.1 for the host's proxy, mounted under a sub-path.
    dict(
        wsgi_server="uwsgi",
        web_server="none",
        process_manager="supervisord",
        os_family="debian",
        database="sqlite",
        rootless=True,
        url_prefix="/app",
    ),
    dict(wsgi_server="gunicorn", web_server="nginx", process_manager="systemd", os_family="debian", database="sqlite"),
    dict(
        wsgi_server="gunicorn",
        web_server="none",
        process_manager="supervisord",
        os_family="rhel",
        database="sqlite",
        url_prefix="/sub/path/",
    ),
]


@pytest.fixture(scope="session")
def server_venv(roots, baked):
    """One virtualenv with the generated project's dependencies, gunicorn, and the uwsgi under test.

    uWSGI comes from the test environment rather than the project's `server` extra (which compiles it
    for half a minute); the venv is made from the same Python that uwsgi has built in.
    """
    uv = require_tool("uv", "makes the virtualenv the app servers run in")
    uwsgi = require_tool("uwsgi", "runs the generated ini")
    uwsgi_python = Path(uwsgi).with_name("python")
    venv = roots[False] / "venv"
    subprocess.run(
        [uv, "venv", "--quiet", "--python", str(uwsgi_python if uwsgi_python.exists() else sys.executable), str(venv)],
        check=True,
    )
    pyproject = tomllib.loads(baked(RUN_STACKS[-1]).file("pyproject.toml").read_text())["project"]
    requirements = pyproject["dependencies"] + pyproject["optional-dependencies"]["server"]
    assert any(r.startswith("gunicorn") for r in requirements)
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--compile-bytecode",
            "--python",
            str(venv / "bin" / "python"),
            *requirements,
        ],
        check=True,
    )
    (venv / "bin" / "uwsgi").symlink_to(uwsgi)
    return venv


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def http_get(address, path):
    """GET path over HTTP from a unix socket path or a (host, port) pair."""
    return Client(address, DOMAIN, timeout=10).get(path)


def uwsgi_get(address, path):
    """GET path in the uwsgi protocol, as nginx's uwsgi_pass sends it."""
    variables = {
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": path,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.0",
        "SERVER_NAME": DOMAIN,
        "SERVER_PORT": "80",
        "HTTP_HOST": DOMAIN,
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_SCHEME": "http",
    }
    body = b"".join(
        struct.pack("<H", len(part)) + part
        for pair in variables.items()
        for part in (pair[0].encode(), pair[1].encode())
    )
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(address)
        client.sendall(struct.pack("<BHB", 0, len(body), 0) + body)
        return read_response(client)


def start_command(project):
    """The command line and directory from the generated unit or program, exactly as written."""
    if project.answers["process_manager"] == "systemd":
        unit = Unit(project.unit)
        return shlex.split(unit.get("ExecStart")), unit.get("WorkingDirectory")
    _name, program = program_section(project.program)
    return shlex.split(program["command"]), program["directory"]


def socket_activation(project):
    """Under systemd, systemd-socket-activate in front of the command: it binds the socket unit's
    ListenStream= and starts the app server with it (LISTEN_FDS) at the first connection, as systemd does."""
    if project.answers["process_manager"] != "systemd":
        return []
    activate = require_tool("systemd-socket-activate", "passes the socket unit's socket as systemd does")
    listen = Unit(project.socket_unit).get("ListenStream", section="Socket")
    # It passes on only the variables named, as systemd passes only EnvironmentFile='s.
    return [activate, f"--listen={listen}", *(f"--setenv={name}" for name in (*project.environment(), "PATH"))]


@pytest.mark.parametrize("answers", RUN_STACKS, ids=app_id)
def test_app_server_serves_and_stops(cookies, roots, server_venv, answers, tmp_path):
    """The command line from the unit or program starts the app server on the generated config, serves
    the app (under its sub-path), and stops on TERM well within the stop timeout, workers included."""
    slug = f"fst_{secrets.token_hex(3)}"
    port = free_port() if answers["web_server"] == "none" else "80"
    project = bake_stack(cookies, roots[bool(answers.get("rootless"))], dict(answers, http_port=port), slug)
    (project.path / ".venv").symlink_to(server_venv)
    command, directory = start_command(project)
    environment = {**os.environ, **project.environment()}
    if answers["wsgi_server"] == "gunicorn":
        checked = subprocess.run(
            [*command, "--check-config"],
            cwd=directory,
            env=environment,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

    run_dir = Path(project.rendered["__run_dir"])
    if project.socket:
        run_dir.mkdir(mode=0o750)  # what RuntimeDirectory= or tmpfiles.d makes
    log = tmp_path / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            socket_activation(project) + command,
            cwd=directory,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        address = project.socket or ("127.0.0.1", int(port))
        get = http_get if project.rendered["__http_proxy"] else uwsgi_get
        response = wait_for_answer(server, get, address, f"{project.prefix}/", log)
        assert response.status == 200, response.text
        assert f'href="{project.prefix}/static/' in response.text  # url_for() keeps the mount point
        activated = bool(socket_activation(project))  # the socket's mode is the socket unit's
        if project.socket and not activated:
            mode = stat.S_IMODE(os.stat(project.socket).st_mode)
            assert mode & 0o060 == 0o060 and mode & 0o007 == 0, oct(mode)

        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=STOP_TIMEOUT) == 0, log.read_text()
        assert time.monotonic() - started < GRACEFUL_WINDOW
        assert not process_group_alive(server.pid), "a worker outlived its master"
        if project.socket and activated:
            # systemd still listens on it: the app server must not have deleted it (vacuum).
            assert os.path.exists(project.socket), "the app server removed the socket systemd holds"
        elif project.socket:
            assert not os.path.exists(project.socket), "the socket was left behind"
    finally:
        if process_group_alive(server.pid):
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        shutil.rmtree(run_dir, ignore_errors=True)


def wait_for_answer(server, get, address, path, log, timeout=60):
    """Poll until the app server answers path; fail with its log if it exits or never answers."""

    def answer():
        if server.poll() is not None:
            pytest.fail(f"the app server exited with {server.returncode}:\n{log.read_text()}")
        try:
            return get(address, path)
        except OSError:
            return None

    response = wait_for(answer, timeout, interval=0.2)
    if response is None:
        pytest.fail(f"no answer on {address} within {timeout} s:\n{log.read_text()}")
    return response


def process_group_gone(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def process_group_alive(pgid, wait=5):
    """Whether any process of the group is left after a short grace period."""
    return not wait_for(lambda: process_group_gone(pgid), wait)
