"""The front server's site file: clean, accepted by the real nginx and Apache, and in step with the app server.

The site file depends only on the WSGI server, the front server, the OS family, the URL prefix and the
port, so each of those stacks is baked once (process manager and database do not change it).
"""

import grp
import importlib.util
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from combinations import SUPPORTED_COMBINATIONS, stack_id
from helpers import bake, default_answers, render_problems, require, require_tool, unavailable

# What the design fixes (docs/design.md, "Timeouts and limits").
APP_TIMEOUT = 30
UPLOAD_LIMIT = 16 * 1024 * 1024
DEBIAN_MODULES = Path("/usr/lib/apache2/modules")
RHEL_MODULES = Path("/usr/lib64/httpd/modules")
# Apache modules both distributions enable out of the box (Debian's default a2enmod set, RHEL's
# conf.modules.d); the site's header comment names what it needs beyond these.
BASE_MODULES = ("mpm_event", "unixd", "authz_core", "alias")


def front_stacks():
    """One nginx or Apache stack per site file that can differ, covering every WSGI server, OS family and
    prefix style (another front server's site file has its own test module)."""
    stacks, seen = [], set()
    for combination in SUPPORTED_COMBINATIONS:
        key = (combination["wsgi_server"], combination["web_server"], combination["os_family"])
        if combination["web_server"] not in ("nginx", "apache") or key in seen:
            continue
        seen.add(key)
        base = dict(wsgi_server=key[0], web_server=key[1], os_family=key[2], process_manager="systemd", tls="none")
        stacks += [dict(base, url_prefix="/"), dict(base, url_prefix="/sub/path")]
    for web in ("nginx", "apache"):
        # A port other than 80 (Apache needs its own Listen), and a prefix with a regex metacharacter.
        stacks += [
            dict(
                wsgi_server="gunicorn",
                web_server=web,
                os_family="debian",
                process_manager="systemd",
                url_prefix="/",
                http_port="8080",
                tls="none",
            ),
            dict(
                wsgi_server="uwsgi",
                web_server=web,
                os_family="rhel",
                process_manager="systemd",
                url_prefix="/my.app/",
                tls="none",
            ),
        ]
    return stacks


def front_id(answers):
    prefix = "root" if answers["url_prefix"] == "/" else answers["url_prefix"].strip("/").replace("/", "-")
    port = f"-port:{answers['http_port']}" if "http_port" in answers else ""
    return f"{stack_id(answers)}-prefix:{prefix}{port}"


FRONT_STACKS = front_stacks()
NGINX_STACKS = [s for s in FRONT_STACKS if s["web_server"] == "nginx"]
APACHE_STACKS = [s for s in FRONT_STACKS if s["web_server"] == "apache"]


class Site:
    """A baked project and its front server's site file."""

    def __init__(self, project, answers):
        self.project = project
        self.answers = answers
        self.slug = answers["project_slug"]
        self.path = project / "deploy" / answers["web_server"] / f"{self.slug}.conf"
        self.text = self.path.read_text()


@pytest.fixture(scope="module")
def sites(cookies_session):
    """Bake each stack at most once per module."""
    cache = {}

    def _site(stack):
        key = front_id(stack)
        if key not in cache:
            project = bake(cookies_session, **stack)
            cache[key] = Site(project, default_answers(**stack))
        return cache[key]

    return _site


class Directive(NamedTuple):
    blocks: tuple  # headers of the enclosing blocks, outermost first: ("server", "location /static/")
    top: int  # which top-level block (server, upstream, VirtualHost) it sits in, counting from 0
    name: str
    args: list


def nginx_directives(text):
    """Every nginx directive, one per line as the template writes them."""
    found, blocks, top = [], [], -1
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line == "}":
            blocks.pop()
        elif line.endswith("{"):
            top += not blocks
            blocks.append(line[:-1].strip())
        else:
            assert line.endswith(";"), f"not one directive per line: {line!r}"
            name, *args = line[:-1].split()
            found.append(Directive(tuple(blocks), top if blocks else -1, name, args))
    assert not blocks, "unbalanced braces"
    return found


def apache_directives(text):
    """Every Apache directive, with continuation lines joined."""
    found, sections, top = [], [], -1
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("</"):
            assert sections and sections[-1].split()[0] == line[2:-1], f"unbalanced {line}"
            sections.pop()
        elif line.startswith("<"):
            top += not sections
            sections.append(line[1:-1])
        else:
            name, *args = line.split()
            found.append(Directive(tuple(sections), top if sections else -1, name, args))
    assert not sections, "unclosed section"
    return found


def values(directives, name, inside=None):
    """The arguments of each `name` directive, optionally only those within the block headed `inside`."""
    return [d.args for d in directives if d.name == name and (inside is None or inside in d.blocks)]


def app_server_sockets(site):
    """Socket paths written in the baked gunicorn or uWSGI config, with the uWSGI option naming each,
    and in the systemd socket unit that binds it for the app server (ListenStream)."""
    found = []
    for path in sorted((site.project / "deploy").glob(f"{site.answers['wsgi_server']}/*")):
        for match in re.finditer(r"^(\w[\w-]*)\s*=\s*\[?\"?(?:unix:)?(/[^\s\"\]]+\.sock)", path.read_text(), re.M):
            found.append(match.groups())
    for path in sorted((site.project / "deploy").glob("systemd/*.socket")):
        found += re.findall(r"^(ListenStream)=(/\S+\.sock)$", path.read_text(), re.M)
    return found


def app_timeout(site):
    """The app server's request timeout from its baked config, or the design's value."""
    for path in (site.project / "deploy").glob(f"{site.answers['wsgi_server']}/*"):
        match = re.search(r"^(?:timeout|harakiri)\s*=\s*(\d+)", path.read_text(), re.M)
        if match:
            return int(match.group(1))
    return APP_TIMEOUT


def seconds(value):
    match = re.fullmatch(r"(\d+)(s?)", value)
    assert match, f"unexpected time value {value!r}"
    return int(match.group(1))


# --- every site file -------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", FRONT_STACKS, ids=front_id)
def test_site_renders_clean(sites, stack):
    """No template tag survives; Jinja blocks leave no stray blank line, trailing space or odd indentation."""
    site = sites(stack)
    text = site.text
    assert render_problems(site.path, text) == []
    assert "\t" not in text
    depth = 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("}", "</")):
            depth -= 1
        # Four spaces per block level; continuation lines go deeper.
        assert not stripped or line == " " * 4 * depth + stripped or line.startswith(" " * 4 * (depth + 1)), line
        if stripped.endswith("{") or (stripped.startswith("<") and not stripped.startswith("</")):
            depth += 1
    assert depth == 0


@pytest.mark.parametrize("stack", FRONT_STACKS, ids=front_id)
def test_socket_matches_app_server(sites, stack):
    """The front server connects to the socket the app server binds, in the protocol it speaks."""
    site = sites(stack)
    expected = site.answers["__socket"]
    if stack["wsgi_server"] == "mod_wsgi":
        assert expected == "" and "unix:" not in site.text
        return
    assert expected.startswith(f"/run/{site.slug}/")
    assert re.findall(r"unix:(/[^\s|;]+)", site.text) == [expected]
    written = app_server_sockets(site)
    assert {path for _, path in written} == {expected}
    if stack["wsgi_server"] == "uwsgi":
        # uwsgi protocol for nginx's uwsgi_pass, HTTP for Apache's mod_proxy_http.
        option = "socket" if stack["web_server"] == "nginx" else "http-socket"
        assert (option, expected) in written


def check_prefix_patterns(prefix, redirect, outside):
    """RedirectMatch patterns: the bare prefix gets its slash, paths outside the prefix get 404."""
    assert re.search(redirect, prefix) and not re.search(redirect, prefix + "x")
    # A "." in the prefix must match only itself.
    for path in {"/", "/other", prefix + "x", prefix.replace(".", "x")} - {prefix}:
        assert re.search(outside, path), path
    assert "." not in prefix or not re.search(redirect, prefix.replace(".", "x"))
    for path in (prefix, prefix + "/", prefix + "/static/app.css", prefix + "/a/b"):
        assert not re.search(outside, path), path


# --- nginx -----------------------------------------------------------------------------------------


def nginx_main_config(tmp_path, site):
    """A throw-away main config that includes the generated site, with every writable path in tmp_path."""
    shutil.copy("/etc/nginx/uwsgi_params", tmp_path / "uwsgi_params")
    user = ""
    if os.geteuid() == 0:
        # As root nginx switches to `user`; its default (nobody:nobody) lacks a group on Debian.
        user = f"user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};\n"
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp_path / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"{user}pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\n    include /etc/nginx/mime.types;\n    access_log {tmp_path / 'access.log'};\n{temp_paths}"
        f"    include {site.path};\n}}\n"
    )
    return main


@pytest.mark.parametrize("stack", NGINX_STACKS, ids=front_id)
def test_nginx_accepts_site(tmp_path, sites, stack):
    """`nginx -t` passes, without a warning, on the site included from a main config."""
    nginx = require_tool("nginx", "checks the generated nginx site")
    main = nginx_main_config(tmp_path, sites(stack))
    result = subprocess.run(
        [nginx, "-t", "-c", str(main), "-p", f"{tmp_path}/"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr, result.stderr


@pytest.mark.parametrize("stack", NGINX_STACKS, ids=front_id)
def test_gixy_finds_nothing(tmp_path, sites, stack):
    """gixy-ng reports no finding, of any severity, for the site in the same main config as `nginx -t`."""
    require_tool("nginx", "its mime.types and uwsgi_params complete the config gixy reads")
    require(importlib.util.find_spec("gixy"), "gixy-ng is not installed (analyses the nginx site); tox installs it")
    main = nginx_main_config(tmp_path, sites(stack))
    result = subprocess.run(
        [sys.executable, "-m", "gixy", "--format", "json", str(main)], capture_output=True, text=True, check=False
    )
    assert json.loads(result.stdout or "null") == [], result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("stack", NGINX_STACKS, ids=front_id)
def test_nginx_site_content(sites, stack):
    """Catch-all 444 first, limits, static alias, timeout and prefix handling as the design says."""
    site = sites(stack)
    directives = nginx_directives(site.text)
    prefix, port, slug = site.answers["__prefix"], site.answers["http_port"], site.slug
    tops = sorted({d.blocks[0] + f" {d.top}" for d in directives if d.blocks})
    form_client = f"${slug}_form_client"
    assert tops == [f"map $request_method {form_client} 0", "server 2", "server 3", f"upstream {slug} 1"]

    # POSTs are limited per client address (the map's key), other methods not at all (an empty key).
    assert values(directives, "POST", inside=f"map $request_method {form_client}") == [["$binary_remote_addr"]]
    assert values(directives, "default", inside=f"map $request_method {form_client}") == [['""']]
    (zone,) = [d.args for d in directives if d.name == "limit_req_zone" and d.top == -1]
    assert zone[0] == form_client and zone[1] == f"zone={slug}_forms:1m"

    # The catch-all owns default_server on IPv4 and IPv6 and closes the connection unanswered.
    catch_all = [(d.name, d.args) for d in directives if d.top == 2]
    assert catch_all == [
        ("listen", [port, "default_server"]),
        ("listen", [f"[::]:{port}", "default_server"]),
        ("server_name", ["_"]),
        ("server_tokens", ["off"]),
        ("return", ["444"]),
    ]
    named = [d for d in directives if d.top == 3]
    assert [d.args for d in named if d.name == "listen"] == [[port], [f"[::]:{port}"]]
    assert values(named, "server_name") == [[site.answers["domain_name"]]]
    assert values(directives, "server", inside=f"upstream {slug}") == [
        [f"unix:{site.answers['__socket']}", "fail_timeout=0"]
    ]

    assert values(named, "server_tokens") == [["off"]]
    ((limit,),) = values(named, "client_max_body_size")
    assert re.fullmatch(r"\d+m", limit) and int(limit[:-1]) * 1024 * 1024 >= UPLOAD_LIMIT

    # Static files: trailing slash on both the location and the alias, or /static../ escapes it.
    static = f"location {prefix}/static/"
    assert values(named, "alias") == values(named, "alias", inside=static)
    assert values(named, "alias") == [[f"{site.answers['install_dir']}/{slug}/static/"]]
    assert values(named, "expires", inside=static)

    # Security headers at server level, always; an add_header in a location would drop them there.
    headers = [d for d in named if d.name == "add_header"]
    assert {d.args[0] for d in headers} >= {"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"}
    assert all(d.args[-1] == "always" and d.blocks == ("server",) for d in headers)

    # The full path goes to the app; the bare prefix gets its slash, everything else is not ours.
    passes = [d for d in named if d.name in ("proxy_pass", "uwsgi_pass")]
    assert [d.blocks for d in passes] == [("server", f"location {prefix}/")]
    locations = sorted({d.blocks[1] for d in named if len(d.blocks) > 1})
    if prefix:
        assert values(named, "return", inside=f"location = {prefix}") == [["301", f"{prefix}/"]]
        assert values(named, "return", inside="location /") == [["404"]]
        assert locations == sorted([f"location = {prefix}", "location /", static, f"location {prefix}/"])
    else:
        assert locations == sorted([static, "location /"])

    timeout_name = "uwsgi_read_timeout" if stack["wsgi_server"] == "uwsgi" else "proxy_read_timeout"
    ((timeout,),) = values(named, timeout_name)
    assert seconds(timeout) > app_timeout(site)

    # Slow clients are cut off well before the app's own timeout; the form's POSTs answer 429 past the limit.
    for name, limit in (("client_header_timeout", 10), ("client_body_timeout", 5), ("send_timeout", 10)):
        assert values(named, name) == [[f"{limit}s"]], name
    app_location = f"location {prefix}/"
    assert values(named, "limit_req", inside=app_location) == [[f"zone={slug}_forms", "burst=10", "nodelay"]]
    assert values(named, "limit_req_status", inside=app_location) == [["429"]]


def database_bound(site):
    """The longest a request waits for a sick database, from the baked config.py: a stale connection's check
    (statement timeout + 1 s), then a new connection (the connect timeout, or PyMySQL's read of the greeting)."""
    text = (site.project / site.slug / "config.py").read_text()
    connect, statement = (
        int(re.search(rf"^DATABASE_{name}_TIMEOUT = (\d+)$", text, re.M).group(1)) for name in ("CONNECT", "STATEMENT")
    )
    return statement + 1 + max(connect, statement + 1)


@pytest.mark.parametrize("stack", NGINX_STACKS + APACHE_STACKS, ids=front_id)
def test_timeouts_nest(sites, stack):
    """A sick database gives up before the app server kills the request, which gives up before the front server."""
    site = sites(stack)
    if stack["web_server"] == "nginx":
        name = "uwsgi_read_timeout" if stack["wsgi_server"] == "uwsgi" else "proxy_read_timeout"
        ((front,),) = values(nginx_directives(site.text), name)
        front = seconds(front)
    elif stack["wsgi_server"] == "mod_wsgi":
        ((_, *options),) = values(apache_directives(site.text), "WSGIDaemonProcess")
        front = int(dict(option.split("=", 1) for option in options)["socket-timeout"])
    else:
        ((front,),) = values(apache_directives(site.text), "ProxyTimeout")
        front = int(front)
    assert database_bound(site) < app_timeout(site) < front


@pytest.mark.parametrize("stack", NGINX_STACKS, ids=front_id)
def test_nginx_passes_what_the_app_trusts(sites, stack):
    """gunicorn gets each X-Forwarded-* header once (ProxyFix trusts one proxy); uWSGI gets uwsgi params."""
    site = sites(stack)
    directives = nginx_directives(site.text)
    if stack["wsgi_server"] == "uwsgi":
        assert values(directives, "uwsgi_pass") == [[site.slug]]
        assert not values(directives, "proxy_pass") and not values(directives, "proxy_set_header")
        app = [(d.name, d.args) for d in directives if f"location {site.answers['__prefix']}/" in d.blocks]
        # After the include, so it overrides the distribution's HTTP_HOST $host (uWSGI keeps the last one).
        assert app.index(("uwsgi_param", ["HTTP_HOST", "$http_host"])) > app.index(("include", ["uwsgi_params"]))
    else:
        assert values(directives, "proxy_pass") == [[f"http://{site.slug}"]] and not values(directives, "uwsgi_pass")
        assert sorted(map(tuple, values(directives, "proxy_set_header"))) == [
            ("Host", "$host:$server_port"),
            ("X-Forwarded-For", "$remote_addr"),
            ("X-Forwarded-Host", "$host:$server_port"),
            ("X-Forwarded-Proto", "$scheme"),
        ]
        assert values(directives, "proxy_buffering") == [["on"]]


# --- Apache ----------------------------------------------------------------------------------------


def apache_binary():
    return shutil.which("httpd") or require_tool("apache2", "checks the generated Apache site")


def module_path(name):
    for directory in (DEBIAN_MODULES, RHEL_MODULES):
        if (directory / f"mod_{name}.so").exists():
            return directory / f"mod_{name}.so"
    return None


@pytest.fixture(scope="session")
def mod_wsgi_config(tmp_path_factory):
    """The lines `mod_wsgi-express module-config` prints for a pip-built mod_wsgi, as the README installs them.

    MOD_WSGI_EXPRESS may name an existing mod_wsgi-express; otherwise one is built (about 10 s, needs apxs).
    """
    express = os.environ.get("MOD_WSGI_EXPRESS") or shutil.which("mod_wsgi-express")
    if not express:
        require_tool("apxs", "builds mod_wsgi for the Apache check")
        venv = tmp_path_factory.mktemp("mod_wsgi") / "venv"
        uv = shutil.which("uv")
        if uv:
            commands = [
                [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
                [uv, "pip", "install", "--quiet", "--no-cache", "--python", str(venv / "bin/python"), "mod_wsgi"],
            ]
        else:
            commands = [
                [sys.executable, "-m", "venv", str(venv)],
                [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--no-cache-dir", "mod_wsgi"],
            ]
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                unavailable(f"building mod_wsgi failed: {result.stderr[-2000:]}")
        express = str(venv / "bin/mod_wsgi-express")
    result = subprocess.run([express, "module-config"], capture_output=True, text=True, check=True)
    assert "LoadModule wsgi_module" in result.stdout
    return result.stdout


def needed_modules(stack):
    """Apache modules the site needs beyond the base set, the ones its header tells the user to enable."""
    return ["headers", "reqtimeout"] + (["wsgi"] if stack["wsgi_server"] == "mod_wsgi" else ["proxy", "proxy_http"])


def apache_site_copy(tmp_path, site):
    """The site file, its mod_wsgi daemon running as an account this machine has (the README creates the real one)."""
    text = site.text
    if site.answers["wsgi_server"] == "mod_wsgi":
        account = pwd.getpwnam("nobody")
        daemon_user = f"user={site.slug} group={site.slug} "
        assert text.count(daemon_user) == 1
        text = text.replace(daemon_user, f"user=nobody group={grp.getgrgid(account.pw_gid).gr_name} ")
    path = tmp_path / site.path.name
    path.write_text(text)
    return path


def apache_main_config(tmp_path, site, stack, mod_wsgi_lines):
    """A throw-away main config that loads only the base modules plus the ones the site asks for."""
    loads = [
        f"LoadModule {name}_module {module_path(name)}\n"
        for name in BASE_MODULES + tuple(needed_modules(stack))
        if module_path(name)
    ]
    main = tmp_path / "httpd.conf"
    main.write_text(
        f"ServerRoot {tmp_path}\nDefaultRuntimeDir {tmp_path}\nPidFile {tmp_path / 'httpd.pid'}\n"
        f"ErrorLog {tmp_path / 'error.log'}\nServerName localhost\nDocumentRoot {tmp_path}\nListen 80\n"
        + "".join(loads)
        + mod_wsgi_lines
        + f"Include {apache_site_copy(tmp_path, site)}\n"
    )
    return main


@pytest.mark.parametrize("stack", APACHE_STACKS, ids=front_id)
def test_apache_accepts_site(tmp_path, request, sites, stack):
    """`apache2 -t` passes without a warning, and the catch-all is the port's default host."""
    apache = apache_binary()
    mod_wsgi_lines = request.getfixturevalue("mod_wsgi_config") if stack["wsgi_server"] == "mod_wsgi" else ""
    site = sites(stack)
    main = apache_main_config(tmp_path, site, stack, mod_wsgi_lines)
    result = subprocess.run([apache, "-t", "-f", str(main)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "Syntax OK", result.stderr
    result = subprocess.run(
        [apache, "-t", "-D", "DUMP_VHOSTS", "-f", str(main)], capture_output=True, text=True, check=False
    )
    port = site.answers["http_port"]
    assert re.search(rf"^\*:{port} +is a NameVirtualHost\n +default server default\.invalid ", result.stdout, re.M), (
        result.stdout
    )


@pytest.mark.parametrize("stack", APACHE_STACKS, ids=front_id)
def test_apache_site_content(sites, stack):
    """Catch-all first, server-scope directives outside the hosts, limits, static alias, prefix, timeouts."""
    site = sites(stack)
    directives = apache_directives(site.text)
    prefix, port, install_dir = site.answers["__prefix"], site.answers["http_port"], site.answers["install_dir"]
    vhost = f"VirtualHost *:{port}"
    assert sorted({(d.top, d.blocks[0]) for d in directives if d.blocks}) == [(0, vhost), (1, vhost)]
    assert [(d.name, d.args) for d in directives if d.top == 0] == [
        ("ServerName", ["default.invalid"]),
        ("ServerSignature", ["Off"]),
        ("Redirect", ["404", "/"]),
    ]
    named = [d for d in directives if d.top == 1]
    assert values(named, "ServerName") == [[site.answers["domain_name"]]]

    # Server scope: Apache refuses these inside a virtual host.
    server_scope = [d for d in directives if d.top == -1]
    assert values(server_scope, "ServerTokens") == [["Prod"]]
    assert values(server_scope, "Listen") == ([] if port == "80" else [[port]])
    assert not values(directives, "LoadModule")

    ((limit,),) = values(named, "LimitRequestBody")
    assert int(limit) >= UPLOAD_LIMIT
    # Slow clients get 408: headers within 10-20 s, a body within 5 s, both at no less than 500 bytes/s.
    assert values(named, "RequestReadTimeout") == [["header=10-20,MinRate=500", "body=5,MinRate=500"]]
    static_dir = f"{install_dir}/{site.slug}/static"
    # Trailing slash on both sides, or /static../ would map outside the directory.
    assert values(named, "Alias") == [[f"{prefix}/static/", f"{static_dir}/"]]
    assert values(named, "Require", inside=f"Directory {static_dir}") == [["all", "granted"]]
    security = [d.args[2] for d in named if d.name == "Header" and d.args[:2] == ["always", "set"]]
    assert set(security) >= {"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"}

    redirects = values(named, "RedirectMatch")
    if prefix:
        assert [r[0] for r in redirects] == ["301", "404"] and redirects[0][2] == f"{prefix}/"
        check_prefix_patterns(prefix, redirects[0][1], redirects[1][1])
    else:
        assert redirects == []

    if stack["wsgi_server"] == "mod_wsgi":
        socket_prefix = "/var/run/wsgi" if stack["os_family"] == "debian" else "run/wsgi"
        assert values(server_scope, "WSGIRestrictEmbedded") == [["On"]]
        assert values(server_scope, "WSGISocketPrefix") == [[socket_prefix]]
        ((group, *options),) = values(named, "WSGIDaemonProcess")
        options = dict(option.split("=", 1) for option in options)
        assert group == options["user"] == options["group"] == site.slug
        assert options["python-home"] == site.answers["__venv"] and options["home"] == install_dir
        assert int(options["request-timeout"]) == APP_TIMEOUT < int(options["socket-timeout"])
        # A daemon restart imports the app again: at 1000 requests that cost most of the throughput.
        assert int(options["maximum-requests"]) >= 100000
        assert values(named, "WSGIProcessGroup") == [[site.slug]]
        assert values(named, "WSGIApplicationGroup") == [["%{GLOBAL}"]]
        assert values(named, "WSGIScriptAlias") == [[prefix or "/", f"{install_dir}/wsgi.py"]]
        assert values(named, "Require", inside="Files wsgi.py") == [["all", "granted"]]
        assert not values(directives, "ProxyPass")
    else:
        assert values(named, "ProxyPass") == [
            [f"{prefix}/static/", "!"],
            [f"{prefix}/", f"unix:{site.answers['__socket']}|http://localhost{prefix}/"],
        ]
        assert values(named, "ProxyPassReverse") == [[f"{prefix}/", f"http://localhost{prefix}/"]]
        assert values(named, "ProxyPreserveHost") == [["On"]]
        assert values(named, "RequestHeader") == [
            ["unset", "X-Forwarded-For"],
            ["unset", "X-Forwarded-Host"],
            ["set", "X-Forwarded-Proto", "expr=%{REQUEST_SCHEME}"],
        ]
        ((timeout,),) = values(named, "ProxyTimeout")
        assert int(timeout) > app_timeout(site)
        assert not [d for d in directives if d.name.startswith("WSGI")]


@pytest.mark.parametrize("stack", [s for s in APACHE_STACKS if s["os_family"] == "debian"], ids=front_id)
def test_apache_site_names_its_modules(sites, stack):
    """The header's a2enmod line names exactly the modules the Apache check loads beyond the base set."""
    site = sites(stack)
    (line,) = re.findall(r"^#\s+a2enmod (.+)$", site.text, re.M)
    assert line.split() == [name for name in needed_modules(stack) if name != "wsgi"]
    if stack["wsgi_server"] == "mod_wsgi":
        assert "a2enmod wsgi" in site.text and "mod_wsgi-express module-config" in site.text
