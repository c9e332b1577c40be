"""Helpers every tier shares: requirements, env files, an HTTP client, waiting, clean rendering, unit files."""

import configparser
import http.client
import os
import re
import shlex
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

TEMPLATE = Path(__file__).resolve().parent.parent


# --- requirements ---------------------------------------------------------------------------------


def in_ci():
    """CI runs with CI=true, on a machine .ci/run has prepared."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(message):
    """Skip a test this machine cannot run; under CI that is a failure."""
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def require(condition, message):
    """unavailable(message) unless condition holds."""
    if not condition:
        unavailable(message)


def require_tool(name, why):
    """The path of a command-line tool; unavailable() when it is missing."""
    path = shutil.which(name)
    require(path is not None, f"{name} is not installed ({why}); .ci/run installs it")
    return path


# --- env files ------------------------------------------------------------------------------------


def parse_env(text):
    """KEY=VALUE lines as systemd's EnvironmentFile= reads them: comments skipped, quotes removed."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        words = shlex.split(value, posix=True) if value.strip() else [""]
        values[key.strip()] = " ".join(words)
    return values


def read_env_file(path):
    return parse_env(Path(path).read_text())


# --- waiting --------------------------------------------------------------------------------------


def wait_for(predicate, timeout, interval=0.1):
    """Call predicate until it returns a true value; return that value, or None after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def connectable(address):
    """True when a unix socket path or a (host, port) pair accepts a connection."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        try:
            probe.connect(address)
            return True
        except OSError:
            return False


# --- HTTP -----------------------------------------------------------------------------------------


class Response:
    def __init__(self, raw):
        """Read an http.client.HTTPResponse whole."""
        self.status = raw.status
        self.headers = {}  # lower-case name -> first value
        for key, value in raw.getheaders():
            self.headers.setdefault(key.lower(), value)
        self.set_cookies = raw.headers.get_all("Set-Cookie") or []
        self.body = raw.read()
        self.text = self.body.decode("utf-8", errors="replace")

    def header(self, name, default=""):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return f"<{self.status} {self.header('content-type')} {self.text[:300]!r}>"


def read_response(connected):
    """The HTTP response that arrives on a socket (from an HTTP server, or uWSGI answering uwsgi_pass)."""
    raw = http.client.HTTPResponse(connected)
    raw.begin()
    return Response(raw)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, as a front server speaks to the app server."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class Client:
    """Requests with a fixed Host header to a port on 127.0.0.1, a (host, port) pair or a unix socket path.

    Keeps cookies; never follows redirects.
    """

    def __init__(self, address, host, timeout=30):
        self.address = ("127.0.0.1", address) if isinstance(address, int) else address
        self.host = host
        self.timeout = timeout
        self.cookies = {}

    def connection(self):
        if isinstance(self.address, str):
            return UnixHTTPConnection(self.address, self.timeout)
        return http.client.HTTPConnection(*self.address, timeout=self.timeout)

    def request(self, method, path, body=None, headers=None, host=None):
        connection = self.connection()
        all_headers = {"Host": host or self.host, "User-Agent": "flask-stack-tests", "Connection": "close"}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        all_headers.update(headers or {})
        try:
            connection.request(method, path, body=body, headers=all_headers)
            response = Response(connection.getresponse())
        finally:
            connection.close()
        for cookie in response.set_cookies:
            name, _, rest = cookie.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post_form(self, path, fields):
        return self.request(
            "POST", path, body=urlencode(fields), headers={"Content-Type": "application/x-www-form-urlencoded"}
        )


# --- rendered files -------------------------------------------------------------------------------

JINJA_LEFTOVER = re.compile(r"\{\{|\{%|\{#|cookiecutter\.")
# Flask's own page templates are copied unrendered and are Jinja on purpose.
FLASK_TEMPLATES = re.compile(r"/templates/[^/]+\.html$")
# Ansible's own Jinja: expressions are the playbook's, but no cookiecutter tag may be left.
ANSIBLE_FILES = re.compile(r"/deploy/ansible/")
COOKIECUTTER_LEFTOVER = re.compile(r"\{%|\{#|cookiecutter\.")


def render_problems(path, text):
    """What Jinja left behind in a rendered file: template tags and stray whitespace. [] when clean."""
    problems = []
    leftover = COOKIECUTTER_LEFTOVER if ANSIBLE_FILES.search(str(path)) else JINJA_LEFTOVER
    if not FLASK_TEMPLATES.search(str(path)) and leftover.search(text):
        problems.append("has an unrendered template tag")
    if text.startswith("\n"):
        problems.append("starts with a blank line")
    # Python separates top-level definitions with two blank lines.
    if Path(path).suffix not in (".py", ".mako") and "\n\n\n" in text:
        problems.append("has two blank lines in a row")
    if re.search(r"[ \t]+$", text, re.MULTILINE):
        problems.append("has trailing whitespace")
    if text and not text.endswith("\n"):
        problems.append("does not end with a newline")
    if text.endswith("\n\n"):
        problems.append("ends with a blank line")
    return problems


# --- systemd units and supervisord programs -------------------------------------------------------


class Unit:
    """A systemd unit file: section -> key -> every value, in order (keys may repeat)."""

    def __init__(self, path):
        self.path = Path(path)
        self.name = self.path.name
        self.sections = {}
        section = None
        logical = ""
        for raw in self.path.read_text().splitlines():
            line = raw.strip()
            if not logical and (not line or line[0] in "#;"):
                continue
            if line.endswith("\\"):
                logical += line[:-1] + " "
                continue
            line, logical = logical + line, ""
            if line.startswith("[") and line.endswith("]"):
                section = self.sections.setdefault(line[1:-1], {})
            elif "=" in line and section is not None:
                key, value = line.split("=", 1)
                section.setdefault(key.strip(), []).append(value.strip())

    def get(self, key, default=None, section="Service"):
        """The value systemd uses for a single-valued key: the last one."""
        values = self.sections.get(section, {}).get(key)
        return values[-1] if values else default

    def all(self, key, section="Service"):
        return self.sections.get(section, {}).get(key, [])

    def section(self, name):
        """{key: value} of one section, the last value of each key."""
        return {key: values[-1] for key, values in self.sections.get(name, {}).items()}


def program_section(path):
    """(program name, options) of the one [program:x] section of a supervisord file."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",), strict=False)
    parser.read(path)
    programs = [s for s in parser.sections() if s.startswith("program:")]
    assert len(programs) == 1, f"{path}: expected one [program:x] section, got {programs}"
    return programs[0].split(":", 1)[1], dict(parser[programs[0]])


# --- baking ---------------------------------------------------------------------------------------


def bake(cookies, **answers):
    """Bake the answers with pytest-cookies' `cookies` (or `cookies_session`); return the project path.

    No virtualenv unless asked for. cookies bakes into a fresh folder bakeNN of its own, removed after the test.
    """
    answers.setdefault("create_venv", False)
    result = cookies.bake(extra_context=with_plain_http_without_front(answers))
    if result.exception is not None:
        raise result.exception
    return result.project_path


def with_plain_http_without_front(answers):
    """The answers, with tls=none where no front server of ours could hold a certificate (web_server=none
    accepts only that) unless a test chooses its TLS itself."""
    if answers.get("web_server") == "none":
        return {"tls": "none", **answers}
    return answers


def default_answers(**overrides):
    """The answers cookiecutter would use without prompts, as the hooks see them."""
    from cookiecutter.generate import generate_context
    from cookiecutter.prompt import prompt_for_config

    overrides = with_plain_http_without_front(overrides)
    context = generate_context(str(TEMPLATE / "cookiecutter.json"), extra_context=overrides)
    answers = prompt_for_config(context, no_input=True)
    answers["_template"] = str(TEMPLATE)
    return answers


def load_hook(name):
    """Import a hook script as a module (its answers are only read in main())."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, TEMPLATE / "hooks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
