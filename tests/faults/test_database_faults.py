"""A sick database and bad clients, on a deployed stack: bounded waits, honest answers, no acknowledged write lost.

One host per stack, deployed by its README (tests/e2e/on_host.py); the database
runs on that host, so stopping or freezing it there touches nothing else. Every
scenario is recorded (tests/faults/results.py) before its checks, so a failing
stack still leaves its numbers in the table.
"""

import contextlib
import http.client
import re
import socket
import subprocess
import threading
import time
from urllib.parse import urlencode

import pytest
from e2e import web
from e2e.cases import Case
from e2e.on_host import WORK_ROOT, HostDeployment
from helpers import Client, wait_for

from .load import Load
from .results import record

# One stack per database; indexes of their own, so slugs and ports never meet the e2e tier's.
STACKS = [
    Case("gunicorn", "nginx", "systemd", "debian", "postgresql", index=41),
    Case("uwsgi", "nginx", "systemd", "debian", "mysql", index=42),
    Case("mod_wsgi", "apache", "systemd", "debian", "sqlite", index=43),
]
# The longest a request may wait for a sick database, as config.py sets it: a stale pooled connection's
# check waits the statement timeout + 1 s, then a new connection waits the connect timeout (PostgreSQL) or,
# PyMySQL reading the server's greeting with its read timeout, the statement timeout + 1 s again (MySQL);
# SQLite waits its busy timeout for the lock.
DATABASE_BOUND = {"postgresql": 6 + 3, "mysql": 6 + 6, "sqlite": 5}
SLACK = 2.0  # this 2-core machine runs the host, the load and other people's tests
FAULT_SECONDS = 16  # longer than every database timeout
SLOW_BODY_TIMEOUT = 5  # nginx client_body_timeout, Apache RequestReadTimeout body=5
WRITES = 600
SOURCES = 60  # client addresses the writes come from: under the form's per-client rate limit each


def database_control(deployment):
    """Shell commands on the host that stop, start, freeze and thaw the case's database server."""
    if deployment.case.database == "postgresql":
        # postgresql.service only starts and stops the clusters; the server runs in postgresql@<version>-main.
        listed = deployment.host.run(["systemctl", "list-units", "--plain", "--no-legend", "postgresql@*"]).stdout
        service, server = "postgresql", listed.split()[0]
    else:
        service = server = "mariadb"
    return {
        "stop": f"systemctl stop {service}",
        "start": f"systemctl start {service}",
        "restart": f"systemctl restart {service}",
        # Every process of the server, as a paused VM or a stuck disk would leave it: connections accepted, no answer.
        "freeze": f"systemctl kill --signal=SIGSTOP {server}",
        "thaw": f"systemctl kill --signal=SIGCONT {server}",
    }


class SqliteLock:
    """Another process on the host holds SQLite's write lock (BEGIN EXCLUSIVE) for `seconds` from begin()."""

    HOLDER = (
        "import sqlite3, sys, time\n"
        "connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
        "connection.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )

    def __init__(self, deployment, seconds):
        self.deployment, self.seconds, self.process = deployment, seconds, None

    def begin(self):
        path = self.deployment.install.sqlite_path
        command = self.deployment.host.command(["python3", "-c", self.HOLDER, path, str(self.seconds)])
        self.process = subprocess.Popen([str(word) for word in command], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked", "the lock holder did not get the lock"

    def end(self):
        self.process.wait(self.seconds + 30)


class Probe:
    """/health asked in a loop during a fault: when it first answered 503, and how long each answer took."""

    def __init__(self, deployment):
        self.deployment = deployment
        self.answers = []  # (seconds since start, status or error name, seconds it took)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        client = Client((self.deployment.host.address, self.deployment.front_port), self.deployment.case.domain, 60)
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                outcome = client.get(self.deployment.url("health")).status
            except TimeoutError:
                outcome = "timeout"
            except OSError as error:
                outcome = type(error).__name__
            self.answers.append((start - self.start, outcome, time.monotonic() - start))
            time.sleep(0.2)

    def __enter__(self):
        self.start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(70)

    def first(self, status):
        """Seconds from the start until an answer with `status` arrived, or None."""
        return next((at + took for at, outcome, took in self.answers if outcome == status), None)


def outcomes(load):
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(load.outcomes.items(), key=str))
    return f"{{{counts}}} max {load.slowest:.1f} s"


def wait_recovered(deployment, timeout=40):
    """Seconds until /health and the notes page answer 200 again, or None."""
    start = time.monotonic()

    def serving():
        with contextlib.suppress(OSError):
            health = deployment.client.get(deployment.url("health")).status
            return health == 200 and deployment.client.get(deployment.url("notes/")).status == 200
        return False

    return time.monotonic() - start if wait_for(serving, timeout, 0.5) else None


def database_fault(deployment, name, begin, end, problems):
    """A fault between begin() and end(): the home page keeps serving, database pages answer 503 in bounded time."""
    case = deployment.case
    bound = DATABASE_BOUND[case.database] + SLACK
    address = (deployment.host.address, deployment.front_port)
    pid_before = deployment.show("MainPID")["MainPID"]
    home = Load(address, case.domain, [deployment.url()], clients=2, timeout=60)
    notes = Load(address, case.domain, [deployment.url("notes/")], clients=2, timeout=60)
    with home, notes:
        time.sleep(1)
        with Probe(deployment) as probe:
            begin()
            time.sleep(FAULT_SECONDS)
        first_503 = probe.first(503)
        end()
        recovered = wait_recovered(deployment)
    pid_after = deployment.show("MainPID")["MainPID"]
    health = {outcome for _, outcome, _ in probe.answers}
    slowest_health = max((took for _, _, took in probe.answers), default=0)
    detail = (
        f"/: {outcomes(home)}; /notes/: {outcomes(notes)}; "
        f"/health: {sorted(health, key=str)} max {slowest_health:.1f} s, "
        f"first 503 at {first_503 and round(first_503, 1)} s; back in {recovered and round(recovered, 1)} s"
    )
    record(name, case.id, home.requests + notes.requests + len(probe.answers), home.failed + notes.failed, detail)
    if home.failed:
        problems.append(f"{name}: the home page failed while the database was sick: {outcomes(home)}")
    if home.slowest > bound:
        problems.append(f"{name}: the home page waited {home.slowest:.1f} s (bound {bound} s)")
    bad_notes = {k for k in notes.outcomes if k not in (200, 503)}
    if bad_notes or notes.slowest > bound:
        problems.append(f"{name}: /notes/ answered other than 200/503 or beyond {bound} s: {outcomes(notes)}")
    if first_503 is None or first_503 > bound + 1:
        problems.append(f"{name}: /health said 503 first at {first_503} s (bound {bound + 1} s): {probe.answers[:8]}")
    if slowest_health > bound or health - {200, 503}:
        problems.append(f"{name}: /health answered {health}, slowest {slowest_health:.1f} s (bound {bound} s)")
    if recovered is None:
        problems.append(f"{name}: the site did not recover after the database came back")
    if pid_before != pid_after:
        problems.append(f"{name}: the app server was restarted ({pid_before} -> {pid_after})")


def form_session(deployment):
    """A client with a session, and the notes form's action and fields (its CSRF token included)."""
    client = Client((deployment.host.address, deployment.front_port), deployment.case.domain)
    path = deployment.url("notes/")
    page = web.Page(client.get(path).text)
    form = next(f for f in page.forms if f["method"] == "post")
    return client, web.local_path(form["action"] or path, path), web.fill(form, "x")


def post(address, host, path, fields, cookies, source=None, timeout=60):
    """One form POST from a given source address; its status, or the error's name."""
    connection = http.client.HTTPConnection(*address, timeout=timeout, source_address=(source, 0) if source else None)
    headers = {
        "Host": host,
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        "Connection": "close",
    }
    try:
        connection.request("POST", path, body=urlencode(fields), headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except TimeoutError:
        return "timeout"
    except OSError as error:
        return type(error).__name__
    finally:
        connection.close()


def writes_through_restart(deployment, problems):
    """WRITES form POSTs from SOURCES addresses while the database restarts: every 302 is a row afterwards."""
    case = deployment.case
    client, action, fields = form_session(deployment)
    sources = [f"10.213.{deployment.host.index}.{100 + n}" for n in range(SOURCES)]
    for source in sources:
        # On this machine's end of the host's link: removed with the link when the host stops.
        subprocess.run(
            ["ip", "addr", "add", f"{source}/32", "dev", deployment.host.name], check=True, capture_output=True
        )
    statuses = {}
    lock = threading.Lock()

    def writer(source, markers):
        for marker in markers:
            status = post(
                (deployment.host.address, deployment.front_port),
                case.domain,
                action,
                {**fields, "body": marker},
                client.cookies,
                source,
            )
            with lock:
                statuses[marker] = status

    per_source = WRITES // SOURCES
    threads = [
        threading.Thread(target=writer, args=(source, [web.new_marker() for _ in range(per_source)]))
        for source in sources
    ]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    if case.database == "sqlite":
        holder = SqliteLock(deployment, 2)
        holder.begin()
        holder.end()
        what = "a 2 s write lock held by another process"
    else:
        deployment.host.sh(database_control(deployment)["restart"])
        what = "a database restart"
    for thread in threads:
        thread.join(120)
    took = time.monotonic() - start
    wait_recovered(deployment)
    dump = deployment.install.dump_database()
    acknowledged = [m for m, s in statuses.items() if s in (302, 303)]
    lost = [m for m in acknowledged if m not in dump]
    counts = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    detail = (
        f"{len(statuses)} POSTs in {took:.1f} s through {what}: {dict(sorted(counts.items(), key=str))};"
        f" {len(acknowledged)} acknowledged, {len(lost)} of them missing from the database"
    )
    record("writes through a restart", case.id, len(statuses), len(statuses) - len(acknowledged), detail)
    if lost:
        problems.append(f"acknowledged notes lost: {lost[:5]} ({len(lost)})")
    other = {s for s in statuses.values() if s not in (302, 303, 503)}
    if other:
        problems.append(f"POSTs during {what} answered {other} (only 302 or 503 are honest)")


def nul_byte(deployment, problems):
    client, action, fields = form_session(deployment)
    response = client.post_form(action, {**fields, "body": "before\x00after"})
    record("NUL byte in a note", deployment.case.id, 1, int(response.status >= 500), f"answered {response.status}")
    if not 400 <= response.status < 500:
        problems.append(f"a NUL byte in a note answered {response.status}, not 4xx: {response!r}")


def slow_body(deployment, problems, limit=30):
    """A POST whose body comes at one byte per 10 s: the front server must close it within its body timeout."""
    connection = socket.create_connection((deployment.host.address, deployment.front_port), timeout=limit)
    head = (
        f"POST {deployment.url('notes/')} HTTP/1.1\r\nHost: {deployment.case.domain}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
    )
    start = time.monotonic()
    answer = b""
    closed_at = None
    try:
        connection.sendall(head.encode())
        while time.monotonic() - start < limit:
            try:
                connection.sendall(b"b")
            except OSError:
                closed_at = time.monotonic() - start
                break
            connection.settimeout(10)
            try:
                chunk = connection.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            answer += chunk
            if not chunk:
                closed_at = time.monotonic() - start
                break
    finally:
        connection.close()
    status = re.match(rb"HTTP/1\.[01] (\d+)", answer)
    shown = f"closed after {closed_at:.1f} s" if closed_at is not None else f"still open after {limit} s"
    detail = f"{shown}, answer {status.group(1).decode() if status else 'none'}"
    record("slow body (1 byte / 10 s)", deployment.case.id, 1, int(closed_at is None), detail)
    if closed_at is None or closed_at > SLOW_BODY_TIMEOUT + SLACK:
        problems.append(f"a slow body was {shown} (body timeout {SLOW_BODY_TIMEOUT} s)")


def rate_limit(deployment, problems, requests=40):
    """Form POSTs from one client as fast as it can: past the front server's limit they get 429."""
    case = deployment.case
    client, action, fields = form_session(deployment)
    address = (deployment.host.address, deployment.front_port)
    statuses = [post(address, case.domain, action, {**fields, "body": "rate"}, client.cookies) for _ in range(requests)]
    counts = {s: statuses.count(s) for s in set(statuses)}
    if case.web_server == "apache":
        # Debian's Apache has no per-client request-rate module (mod_ratelimit limits bandwidth): see the site file.
        record("form POST rate limit", case.id, requests, 0, f"no front-server limit on Apache: {counts}")
        return
    record("form POST rate limit", case.id, requests, 0, f"{counts}")
    if 429 not in counts or statuses[0] == 429:
        problems.append(f"{requests} POSTs from one client: {counts}, expected 429 past the limit")


def short_secret_key(deployment, problems):
    """The app, started as production starts it but with a 1-character SECRET_KEY, refuses to start."""
    case = deployment.case
    install = f"/opt/{case.slug}"
    env_file = f"/etc/{case.slug}/{case.slug}.env"
    # The environment file as the service reads it, the key replaced; wsgi.py builds the production app.
    as_app = f"cd {install} && set -a && . {env_file} && set +a && FLASK_SECRET_KEY=x exec .venv/bin/python -c "
    as_app += "'import wsgi'"
    result = deployment.host.run(["runuser", "-u", case.slug, "--", "bash", "-c", as_app], check=False)
    refused = result.returncode != 0 and "SECRET_KEY" in result.stderr
    detail = "refused" if refused else f"accepted (exit {result.returncode})"
    record("1-character SECRET_KEY", case.id, 1, int(not refused), detail)
    if not refused:
        problems.append(f"production started with a 1-character SECRET_KEY: {result.stderr[-500:]}")


@pytest.fixture
def timing():
    """Seconds per step of the deployment, printed with the test's output."""
    steps = {}
    yield steps
    print("steps: " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps.items()))


@pytest.mark.parametrize("case", STACKS, ids=[case.id for case in STACKS])
def test_database_faults_and_bad_clients(case, hosts, package_mirror, timing):
    """The database stopped, frozen or locked longer than its timeouts costs each request a bounded wait and
    an honest 503, never the home page; the site recovers without a restart; writes acknowledged through a
    database restart are all kept; a NUL byte is a 4xx, a slow body is cut off, POSTs past the limit get 429,
    and production refuses a short SECRET_KEY."""
    deployment = HostDeployment(case, hosts, package_mirror, WORK_ROOT / "faults" / case.slug, timing)
    problems = []
    with deployment.reporting():
        deployment.deploy()
        deployment.wait_serving()
        with deployment.step("database faults"):
            if case.database == "sqlite":
                lock = SqliteLock(deployment, FAULT_SECONDS)
                database_fault(deployment, "SQLite locked", lock.begin, lock.end, problems)
            else:
                control = database_control(deployment)
                database_fault(
                    deployment,
                    "database stopped",
                    lambda: deployment.host.sh(control["stop"]),
                    lambda: deployment.host.sh(control["start"]),
                    problems,
                )
                database_fault(
                    deployment,
                    "database frozen (SIGSTOP)",
                    lambda: deployment.host.sh(control["freeze"]),
                    lambda: deployment.host.sh(control["thaw"]),
                    problems,
                )
        with deployment.step("writes"):
            writes_through_restart(deployment, problems)
        with deployment.step("bad clients"):
            nul_byte(deployment, problems)
            slow_body(deployment, problems)
            rate_limit(deployment, problems)
            short_secret_key(deployment, problems)
    assert not problems, "\n".join(problems)
