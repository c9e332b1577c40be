"""One deployment of one case: bake, install, start, check, stop.

The checks are methods so the test reads as the list of what is proven.
"""

import contextlib
import grp
import os
import pwd
import re
import stat
import time
from pathlib import Path

from helpers import Client, connectable, program_section, wait_for

from . import web
from .deploy import Install, bake
from .servers import (
    APACHE_DEBIAN_DEFAULT_MODULES,
    APACHE_RHEL_EXTRA_MODULES,
    Apache,
    Nginx,
    Supervisor,
)
from .system import (
    ensure_system_account,
    listening_sockets,
    make_dir,
    process_ids,
    process_name,
    remove_tree,
    run,
    tail,
)

WORK_ROOT = Path("/tmp/flask-stack-e2e")  # not under pytest's 0700 tmp: service users must reach the notify socket


def one_file(folder, pattern, what):
    found = sorted(Path(folder).glob(pattern))
    assert len(found) == 1, f"expected one {what} ({pattern}) in {folder}, found {[p.name for p in found]}"
    return found[0]


class Deployment:
    def __init__(self, case, cleanup, wheelhouse, timings=None):
        self.case = case
        self.wheelhouse = wheelhouse
        self.cleanup = cleanup
        self.work = WORK_ROOT / case.slug
        self.rendered = case.rendered()  # the bake's answers and derived values
        self.prefix = self.rendered["__prefix"]
        self.front_port = case.proxy_port if case.web_server == "none" else case.port
        self.client = Client(self.front_port, case.domain)
        self.install = None
        self.supervisor = None  # Supervisor
        self.program = None  # (name, options)
        self.front = None  # Nginx or Apache
        self.app_log = None
        self.timings = {} if timings is None else timings
        self.checked = []

    # --- reporting -----------------------------------------------------------

    def logs(self):
        found = {}
        if self.app_log is not None:
            found["app server output"] = tail(self.app_log)
        if self.supervisor is not None:
            found["supervisord.log"] = tail(self.supervisor.log_path)
            for path in sorted(self.supervisor.dir.glob("*.log")):
                if path != self.supervisor.log_path:
                    found[str(path)] = tail(path)
            for key in ("stdout_logfile", "stderr_logfile"):
                value = (self.program[1] if self.program else {}).get(key)
                if value and value.startswith("/"):
                    found[value] = tail(value)
        if self.front is not None:
            found.update(self.front.logs())
        return found

    @contextlib.contextmanager
    def reporting(self):
        """On failure, attach the app server's and the front server's logs to the error."""
        try:
            yield
        except BaseException as error:
            text = "\n".join(f"===== {name} =====\n{body}" for name, body in self.logs().items())
            print(text)
            if hasattr(error, "add_note"):
                error.add_note(text)
            raise

    @contextlib.contextmanager
    def step(self, name):
        start = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0) + time.monotonic() - start

    # --- deploy ----------------------------------------------------------------

    def deploy(self):
        remove_tree(self.work)
        make_dir(self.work, self.cleanup, mode=0o755)
        with self.step("bake"):
            project = bake(self.case, self.work / "bake")
        self.install = install = Install(self.case, project, self.cleanup)
        with self.step("wheels"):
            self.wheelhouse.ensure(self.case.wsgi_server)
        with self.step("install"):
            if self.case.web_server != "none":
                self._front_account()  # the front server's package makes it (RHEL: nginx, apache)
            install.create_user()
            install.copy_code()
            install.create_venv(self.wheelhouse)
            install.install_env_file()
            install.create_database()

    def deployed(self, folder, pattern, what):
        return one_file(self.install.root / folder, pattern, what)

    def init_db(self):
        with self.step("init-db"):
            self.install.init_db()

    # --- app server --------------------------------------------------------------

    def start_app(self):
        case = self.case
        self.app_log = self.work / "app.log"
        if case.wsgi_server == "mod_wsgi":
            self.init_db()
            return
        with self.step("start app"):
            assert case.process_manager == "supervisord", "systemd stacks run on test hosts (on_host.py)"
            self._start_supervisord()
        self._wait_listening()

    def _start_supervisord(self):
        case, install = self.case, self.install
        program_file = self.deployed("deploy/supervisord", "*", "supervisord program file")
        self.program = program_section(program_file)
        if case.rootless:
            home = Path(f"/home/{install.user}")
            etc = home / "etc"
            services = etc / "services.d"
            services.mkdir(parents=True, exist_ok=True)
            (services / f"{case.slug}.ini").write_bytes(program_file.read_bytes())
            run(["chown", "-R", f"{install.user}:{install.group}", etc])
            self.supervisor = Supervisor(etc, "services.d/*.ini", self.cleanup, user=install.user)
        else:
            tmpfiles = list((install.root / "deploy/tmpfiles").glob("*.conf"))
            if tmpfiles:
                remove_tree(f"/run/{case.slug}")
                run(["systemd-tmpfiles", "--create", tmpfiles[0]])
                self.cleanup.push(f"remove /run/{case.slug}", remove_tree, f"/run/{case.slug}")
            supervisor_dir = make_dir(self.work / "supervisor", self.cleanup, mode=0o700)
            self.supervisor = Supervisor(supervisor_dir, program_file, self.cleanup)
        for key in ("stdout_logfile", "stderr_logfile"):
            value = self.program[1].get(key, "")
            if value.startswith("/") and not Path(value).parent.exists():
                # supervisord (root, or the rootless user) writes the log; the README makes its folder.
                owner = install.user if case.rootless else "root"
                make_dir(Path(value).parent, self.cleanup, owner, owner, 0o750)
        self.init_db()
        self.supervisor.start(f"supervisord-{case.slug}", self.app_log)
        self.app_pid = self.supervisor.wait_running(self.program[0])

    @property
    def socket_path(self):
        return self.rendered["__socket"] or None

    def _wait_listening(self):
        target = self.socket_path or ("127.0.0.1", self.case.port)
        assert wait_for(lambda: connectable(target), 30), f"the app server does not accept connections on {target}"

    def app_pids(self):
        if self.supervisor is not None:
            return self.supervisor.program_pids()
        uid = pwd.getpwnam(self.install.user).pw_uid  # mod_wsgi daemon processes run as the app user
        return [pid for pid in self.front.tree.pids() if process_ids(pid)[0] == uid]

    # --- front server ------------------------------------------------------------

    def start_front(self):
        with self.step("start front"):
            if self.case.web_server == "nginx":
                self._start_nginx()
            elif self.case.web_server == "apache":
                self._start_apache()
            elif self.case.web_server == "none":
                self._start_test_proxy()
            else:
                raise NotImplementedError(f"the end-to-end tier has no way to start web_server={self.case.web_server}")

    def _front_account(self):
        user, group = self.case.front_user, self.rendered["__front_group"]
        ensure_system_account(user, self.cleanup)
        return user, group

    def _start_nginx(self):
        user, group = self._front_account()
        site = self.deployed("deploy/nginx", "*.conf", "nginx site file")
        self.front = Nginx(self.work / "nginx", user, group, [site], self.cleanup)
        self.front.start(f"nginx-{self.case.slug}", self.case.port)

    def _start_test_proxy(self):
        """A plain nginx reverse proxy of the test's own, playing the host's proxy."""
        proxy = self.work / "proxy.conf"
        proxy.write_text(f"""server {{
    listen 127.0.0.1:{self.case.proxy_port};
    server_name _;
    location / {{
        proxy_pass http://127.0.0.1:{self.case.port};
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
    }}
}}
""")
        self.front = Nginx(self.work / "nginx", "nobody", "nogroup", [proxy], self.cleanup)
        self.front.start(f"proxy-{self.case.slug}", self.case.proxy_port)

    def _apache_modules(self):
        modules = list(APACHE_DEBIAN_DEFAULT_MODULES)
        if self.case.os_family == "rhel":
            modules += APACHE_RHEL_EXTRA_MODULES
        readme = (self.install.root / "README.md").read_text()
        for line in re.findall(r"a2enmod\s+([^\n`&;|]+)", readme):
            modules += [word for word in line.split() if not word.startswith("-")]
        return list(dict.fromkeys(m for m in modules if (Path("/usr/lib/apache2/modules") / f"mod_{m}.so").exists()))

    def _start_apache(self):
        user, group = self._front_account()
        site = self.deployed("deploy/apache", "*.conf", "Apache site file")
        extra = []
        if self.case.wsgi_server == "mod_wsgi":
            extra = run([self.install.venv / "bin" / "mod_wsgi-express", "module-config"]).stdout.splitlines()
        self.front = Apache(
            self.work / "apache", user, group, site, self.case.port, self._apache_modules(), extra, self.cleanup
        )
        self.front.start(f"apache-{self.case.slug}")
        if self.case.wsgi_server == "mod_wsgi":
            assert wait_for(lambda: self.app_pids(), 20), "no mod_wsgi daemon process runs as the app user"

    # --- checks through the front server ----------------------------------------

    def url(self, path=""):
        return f"{self.prefix}/{path}"

    def check_index(self):
        response = self.client.get(self.url())
        assert response.status == 200, f"GET {self.url()}: {response!r}"
        assert self.case.project_name in response.text, f"the index page lacks the project name: {response!r}"
        self.index = web.Page(response.text)
        self.checked.append("index 200 with the project name")
        return response

    def check_links(self):
        """Every local href/src/action of the index starts with the prefix."""
        local = [u for u in self.index.urls if u.startswith("/") and not u.startswith("//")]
        assert local, f"the index page has no local links: {self.index.urls}"
        bad = [u for u in local if not u.startswith(self.url())]
        assert not bad, f"links lose the URL prefix {self.prefix!r}: {bad}"
        absolute = [u for u in self.index.urls if u.startswith("http")]
        bad = [u for u in absolute if self.case.domain in u and not web.urlsplit(u).path.startswith(self.url())]
        assert not bad, f"absolute links lose the URL prefix: {bad}"
        self.checked.append(f"{len(local)} links under {self.url()}")

    def check_stylesheet(self):
        assert self.index.stylesheets, "the index page links no stylesheet"
        for href in self.index.stylesheets:
            path = web.local_path(href, self.url())
            assert path.startswith(self.url()), f"stylesheet {href} is outside the prefix"
            response = self.client.get(path)
            assert response.status == 200, f"GET {path}: {response!r}"
            assert response.header("content-type").startswith("text/css"), f"GET {path}: {response.headers}"
        self.checked.append("stylesheet 200 text/css")

    def find_form(self):
        """The first POST form: on the index or on a page the index links to."""
        candidates = [(self.url(), self.index)]
        for href in self.index.links:
            path = web.local_path(href, self.url())
            if path.startswith(self.url()) and path != self.url() and not path.startswith(self.url("static/")):
                response = self.client.get(path)
                if response.status == 200 and "text/html" in response.header("content-type"):
                    candidates.append((path, web.Page(response.text)))
        for path, page in candidates:
            for form in page.forms:
                if form["method"] == "post":
                    return path, form
        raise AssertionError(f"no POST form on {self.url()} or the pages it links: {self.index.links}")

    def check_form(self):
        path, form = self.find_form()
        # Fetch the form page afresh so the CSRF token belongs to this session.
        page = web.Page(self.client.get(path).text)
        form = next(f for f in page.forms if f["method"] == "post")
        assert any(kind == "hidden" and "csrf" in name for _, kind, name, _ in form["fields"]), (
            f"the form carries no CSRF token: {form}"
        )
        marker = web.new_marker()
        action = web.local_path(form["action"] or path, path)
        assert action.startswith(self.url()), f"the form posts outside the prefix: {form['action']}"
        response = self.client.post_form(action, web.fill(form, marker))
        assert response.status in (302, 303), f"POST {action}: expected a redirect, got {response!r}"
        location = response.header("location")
        parts = web.urlsplit(location)
        if parts.netloc:
            assert parts.hostname == self.case.domain, f"the redirect leaves the host: {location}"
        assert parts.path.startswith(self.url()), f"the redirect loses the prefix {self.prefix!r}: {location}"
        followed = self.client.get(web.local_path(location, action))
        assert followed.status == 200 and marker in followed.text, (
            f"GET {location} after POST does not show {marker}: {followed!r}"
        )
        dump = self.install.dump_database()
        assert marker in dump, f"{marker} is not in the {self.case.database} database:\n{dump[-2000:]}"
        # Without the token the app refuses the POST.
        refused = self.client.post_form(action, {k: v for k, v in web.fill(form, marker).items() if "csrf" not in k})
        assert refused.status == 400 or marker not in refused.text, f"POST without CSRF token accepted: {refused!r}"
        self.checked.append(f"form POST -> {response.status} {location} -> row in {self.case.database}")

    def check_health(self):
        # Back to back, as a front server reusing its upstream connections sends them.
        for _ in range(30):
            response = self.client.get(self.url("health"))
            assert response.status == 200, f"GET {self.url('health')}: {response!r}"
        body = web.json_body(response)
        assert isinstance(body, dict) and body.get("database") == "ok", (
            f"the health endpoint does not report the database ok: {response!r}"
        )
        self.checked.append(f"health 200 {body}")

    def app_log_text(self):
        """What the app server logged (gunicorn logs every request, uWSGI its 4xx/5xx)."""
        paths = [self.app_log]
        if self.program:
            paths += [
                Path(self.program[1][key])
                for key in ("stdout_logfile", "stderr_logfile")
                if self.program[1].get(key, "").startswith("/")
            ]
        return "".join(path.read_text(errors="replace") for path in paths if path.exists())

    def check_unknown_host(self):
        """A Host the site does not serve is refused: by nginx (444) or Apache before the app,
        by the app's TRUSTED_HOSTS (400) behind the host's proxy."""
        probe = self.url(f"unknown-host-{web.new_marker()}")
        try:
            response = self.client.get(probe, host="unknown.invalid")
        except (ConnectionError, OSError) as error:  # nginx 444 closes the connection
            assert self.case.web_server == "nginx", f"the connection was closed: {error!r}"
            self.checked.append("unknown Host: connection closed (444)")
            response = None
        else:
            assert self.case.web_server != "nginx", f"nginx answered an unknown Host instead of 444: {response!r}"
            expected = 400 if self.case.web_server == "none" else 404
            assert response.status == expected, f"unknown Host got {response!r}, not {expected}"
            assert self.case.project_name not in response.text, f"unknown Host was served the app: {response!r}"
            self.checked.append(f"unknown Host refused ({response.status})")
        if self.case.web_server != "none" and self.case.wsgi_server == "gunicorn":
            # gunicorn logs failed requests only (the front server logs every request): a 404 of the app shows.
            missing = self.url(f"missing-{web.new_marker()}")
            response = self.client.get(missing)
            assert response.status == 404, f"GET {missing}: {response!r}"
            time.sleep(0.2)
            logged = self.app_log_text()
            assert f'{missing} HTTP/1.0" 404 ' in logged or f'{missing} HTTP/1.1" 404 ' in logged, (
                f"gunicorn's access log does not show the 404 it answered:\n{logged[-3000:]}"
            )
            assert probe.rsplit("/", 1)[1] not in logged, "the unknown Host reached the app server"
            assert f"{self.url('health')} HTTP/1." not in logged, "gunicorn logged a successful request"
            self.checked.append("it never reached gunicorn; gunicorn logged the app's 404, not its 200s")

    # --- socket and process checks -------------------------------------------------

    def check_listening(self):
        """The app server listens only on its unix socket or on 127.0.0.1."""
        pids = self.app_pids()
        assert pids, "no app server process found"
        sockets = listening_sockets(pids)
        public = [s for s in sockets if s[0] == "tcp" and s[1] not in ("127.0.0.1", "::1")]
        assert not public, f"the app server listens on a public address: {public} (processes {pids})"
        if self.socket_path:
            assert ("unix", self.socket_path) in sockets, (
                f"the app server does not listen on {self.socket_path}: {sockets}"
            )
            assert not [s for s in sockets if s[0] == "tcp"], f"the app server also listens on TCP: {sockets}"
            self.checked.append(f"listens only on {self.socket_path}")
            self.check_socket_access()
        elif self.case.wsgi_server != "mod_wsgi":
            assert ("tcp", "127.0.0.1", self.case.port) in sockets, (
                f"not listening on 127.0.0.1:{self.case.port}: {sockets}"
            )
            self.checked.append(f"listens only on 127.0.0.1:{self.case.port}")
        else:
            assert not [s for s in sockets if s[0] == "tcp"], f"mod_wsgi daemon processes hold TCP listeners: {sockets}"
            self.checked.append("mod_wsgi daemons hold no TCP listener")
        self.checked.append("processes: " + "; ".join(process_name(p)[:60] for p in pids[:3]))

    def check_socket_access(self):
        """The front server's group may connect to the socket, other users may not.

        Either the socket itself (0660, front group) or its directory (x for
        the front group only) keeps others out; the front server's access is
        proven by every request above.
        """
        sock, folder = os.stat(self.socket_path), os.stat(os.path.dirname(self.socket_path))
        front_group = self.rendered["__front_group"]
        mode, folder_mode = stat.S_IMODE(sock.st_mode), stat.S_IMODE(folder.st_mode)
        group, folder_group = grp.getgrgid(sock.st_gid).gr_name, grp.getgrgid(folder.st_gid).gr_name
        described = f"socket {oct(mode)} :{group}, folder {oct(folder_mode)} :{folder_group}"
        assert folder_group == front_group and folder_mode & 0o010, (
            f"{front_group} cannot enter the folder: {described}"
        )
        assert not folder_mode & 0o001 or not mode & 0o002, f"any user may connect: {described}"
        outsider = run(
            [
                "setpriv",
                "--reuid",
                "nobody",
                "--regid",
                "nogroup",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])",
                self.socket_path,
            ],
            check=False,
        )
        assert outsider.returncode != 0 and "PermissionError" in outsider.stderr, (
            f"user nobody may connect to {self.socket_path} ({described}): {outsider.stderr}"
        )
        self.checked.append(f"{described}; nobody is refused")

    # --- stop --------------------------------------------------------------------

    def check_stop(self):
        """The program's stop signal ends every app process in time and removes the socket."""
        with self.step("stop"):
            name, options = self.program
            elapsed, limit = self.supervisor.stop_check(name, options, self.socket_path)
            how = f"supervisorctl stop (stopsignal={options.get('stopsignal', 'TERM')})"
        self.checked.append(f"stopped by {how} in {elapsed:.1f} s (limit {limit:.0f} s)")
