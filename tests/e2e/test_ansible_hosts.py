"""The generated playbook on booted test hosts, over SSH to their 10.213 addresses, as a user runs it.

One fresh host per stack (each wsgi server, both front servers and none; HTTPS from a local ACME server; the
database on the same host) to the first 200 through the front server in one run, and a second run that changes
nothing. A fleet of two app hosts and a PostgreSQL host: the same two runs, a release with a code change rolled
under load without a failed request, a release whose health check fails stopped at the first host while the one
before keeps serving, and rollback.yml."""

import os
import re
import subprocess
import time

import pytest
from faults import results
from faults.load import Load
from helpers import Client, bake, read_env_file, require_tool, wait_for

from .on_host import stock_mirror
from .pebble import ACME_DIRECTORY, start_pebble
from .test_tls import HTTPSClient

pytestmark = pytest.mark.e2e
DOMAIN = "example.com"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


class Playbook:
    """ansible-playbook on this machine against test hosts, with the project's own deploy/ansible."""

    def __init__(self, project, hosts, db_hosts=()):
        self.project = project
        self.ansible = project / "deploy" / "ansible"
        self.command = require_tool("ansible-playbook", "the ansible-core package, pinned in tox.ini")
        key = hosts[0].key
        ssh = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
        line = f"ansible_user=root ansible_ssh_private_key_file={key} ansible_ssh_common_args='{ssh}'"
        inventory = ["[app]", *(f"{h.name} ansible_host={h.address} {line}" for h in hosts)]
        inventory += ["[db]", *(f"{h.name} ansible_host={h.address} {line}" for h in db_hosts)]
        (self.ansible / "inventory.ini").write_text("\n".join(inventory) + "\n")

    def run(self, playbook="site.yml", check=True):
        start = time.monotonic()
        result = subprocess.run(
            [self.command, "-i", "inventory.ini", playbook],
            cwd=self.ansible,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"},
            timeout=900,
        )
        result.seconds = time.monotonic() - start
        output = result.stdout + result.stderr
        settings = read_env_file(self.project / ".env")
        secrets = [value for key, value in settings.items() if key in ("FLASK_SECRET_KEY", "DB_PASSWORD")]
        assert not [s for s in secrets if s in output], "a secret from .env shows in the playbook's output"
        if check:
            assert result.returncode == 0, output[-6000:]
        return result

    @staticmethod
    def changed(result):
        """Changed tasks per managed host, from the recap (the packing on this machine changes nothing)."""
        return {host: int(changed) for host, _ok, changed, *_ in RECAP.findall(result.stdout) if host != "localhost"}

    @staticmethod
    def changed_tasks(result):
        """The names of the tasks that reported a change."""
        changed, task = [], None
        for line in result.stdout.splitlines():
            if line.startswith("TASK ["):
                task = line[6:].split("]", 1)[0]
            elif line.startswith("changed:") and task not in changed:
                changed.append(task)
        return changed


def edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{path.name} has no {old!r}"
    path.write_text(text.replace(old, new, 1))


def serving_release(host, install_dir):
    return host.run(["readlink", install_dir]).stdout.strip()


SINGLE_HOST = {
    "gunicorn-nginx-sqlite-https": {
        "wsgi_server": "gunicorn",
        "web_server": "nginx",
        "database": "sqlite",
        "tls": "letsencrypt",
        "acme_server": ACME_DIRECTORY,
    },
    # PostgreSQL on the app host itself: the inventory's [db] group is empty.
    "uwsgi-apache-postgresql": {
        "wsgi_server": "uwsgi",
        "web_server": "apache",
        "database": "postgresql",
        "tls": "none",
    },
    "mod_wsgi-apache-mysql": {"wsgi_server": "mod_wsgi", "web_server": "apache", "database": "mysql", "tls": "none"},
    "uwsgi-none-sqlite-supervisord": {
        "wsgi_server": "uwsgi",
        "web_server": "none",
        "database": "sqlite",
        "process_manager": "supervisord",
        "tls": "none",
    },
}


def front_health(host, answers, cafile):
    """/health as a client asks it: through the front server from this machine, or on the host's loopback port
    where the host's own proxy would forward (web_server=none)."""
    if answers["web_server"] == "none":
        curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Host: {DOMAIN}"]
        return host.run([*curl, "http://127.0.0.1:8000/health"]).stdout
    if answers["tls"] == "letsencrypt":
        return str(HTTPSClient((host.address, 443), DOMAIN, cafile=str(cafile)).get("/health").status)
    return str(Client((host.address, 80), DOMAIN).get("/health").status)


@pytest.mark.parametrize("answers", SINGLE_HOST.values(), ids=SINGLE_HOST.keys())
def test_playbook_takes_a_fresh_host_to_its_first_200(answers, cookies, hosts, package_mirror, tmp_path):
    """One run from bake to the first 200 through the front server; the second run changes nothing."""
    start = time.monotonic()
    project = bake(cookies, **answers)
    stock_mirror(package_mirror, project)
    host = hosts.boot()
    cafile = tmp_path / "pebble-root.pem"
    if answers["tls"] == "letsencrypt":
        cafile.write_text(start_pebble(host, DOMAIN))
    playbook = Playbook(project, [host])
    first = playbook.run()
    assert wait_for(lambda: front_health(host, answers, cafile) == "200", timeout=30)
    to_first_200 = time.monotonic() - start
    second = playbook.run()
    assert set(playbook.changed(second).values()) == {0}, playbook.changed_tasks(second)
    assert front_health(host, answers, cafile) == "200"
    print(
        f"\n{project.name}: bake to first 200 {to_first_200:.0f} s (playbook {first.seconds:.0f} s), "
        f"second run {second.seconds:.0f} s, changed=0"
    )


def test_playbook_rolls_a_fleet_one_host_at_a_time(cookies, hosts, package_mirror):
    """Two app hosts and a PostgreSQL host: the database listens on its private address and lets in the app
    hosts only; a release rolls under load without a failed request; a broken one stops at the first host."""
    answers = {"wsgi_server": "gunicorn", "web_server": "nginx", "database": "postgresql", "tls": "none"}
    project = bake(cookies, **answers)
    stock_mirror(package_mirror, project)
    apps = [hosts.boot(), hosts.boot()]
    db = hosts.boot()
    playbook = Playbook(project, apps, db_hosts=[db])
    slug = project.name
    clients = [Client((app.address, 80), DOMAIN) for app in apps]

    first = playbook.run()
    # A note written through the first app host is read back through the second: one database.
    token = re.search(r'name="csrf_token" value="([^"]+)"', clients[0].get("/notes/").text).group(1)
    assert clients[0].post_form("/notes/", {"csrf_token": token, "body": "written on app one"}).status in (302, 303)
    assert "written on app one" in clients[1].get("/notes/").text
    listening = db.run(["ss", "-Hltn", "sport = :5432"]).stdout
    assert f"{db.address}:5432" in listening and "0.0.0.0:5432" not in listening, listening
    hba = db.run(["runuser", "-u", "postgres", "--", "psql", "-tAc", "SHOW hba_file"], cwd="/").stdout.strip()
    allowed = [line for line in db.read(hba).splitlines() if line.startswith(f"host    {slug} ")]
    assert sorted(line.split()[3] for line in allowed) == sorted(f"{app.address}/32" for app in apps)
    password = read_env_file(project / ".env")["DB_PASSWORD"]
    # The database host itself is no app host: its own private address is refused.
    refused = db.run(
        ["psql", "-h", db.address, "-U", slug, "-d", slug, "-c", "SELECT 1"], env={"PGPASSWORD": password}, check=False
    )
    assert refused.returncode != 0 and "no pg_hba.conf entry" in refused.stderr, refused.stderr
    for app in apps:
        assert "postgresql" not in app.run(["systemctl", "list-units", "--type=service"]).stdout
        # systemd holds the app server's socket (the socket unit), as the README's steps set it up.
        assert app.run(["systemctl", "is-active", f"{slug}.socket", f"{slug}.service"]).stdout.split() == ["active"] * 2
    # One daily backup of the database server, from the first app host, and its first copy already taken.
    assert apps[0].run(["systemctl", "is-active", f"{slug}-backup.timer"]).stdout.strip() == "active"
    assert apps[1].run(["systemctl", "is-enabled", f"{slug}-backup.timer"], check=False).returncode != 0
    backups = apps[0].run(["ls", f"/var/backups/{slug}"]).stdout.split()
    assert len(backups) == 1 and backups[0].endswith(".dump"), backups
    second = playbook.run()
    assert set(playbook.changed(second).values()) == {0}, playbook.changed_tasks(second)
    release_one = [serving_release(app, f"/opt/{slug}") for app in apps]

    index = project / slug / "templates" / "index.html"
    edit(index, "<h1>", '<p id="release">Release two</p>\n  <h1>')
    loads = [Load((app.address, 80), DOMAIN, ["/", "/health"], clients=2) for app in apps]
    for load in loads:
        load.__enter__()
    try:
        rolled = playbook.run()
        time.sleep(1)
    finally:
        for load in loads:
            load.__exit__(None, None, None)
    requests, failed = sum(load.requests for load in loads), sum(load.failed for load in loads)
    results.record("ansible fleet release under load", "gunicorn-nginx-postgresql x2", requests, failed)
    assert failed == 0, [load.outcomes for load in loads]
    assert all("Release two" in client.get("/").text for client in clients)
    release_two = [serving_release(app, f"/opt/{slug}") for app in apps]

    edit(project / slug / "health.py", 'return {"status": "ok", "database": "ok"}', 'return {"status": "broken"}, 503')
    broken = playbook.run(check=False)
    assert broken.returncode != 0 and "failed its health check" in broken.stdout
    changed = playbook.changed(broken)
    assert apps[1].name not in changed or changed[apps[1].name] == 0, broken.stdout[-3000:]
    assert [serving_release(app, f"/opt/{slug}") for app in apps] == release_two
    assert all(wait_for(lambda c=client: c.get("/health").status == 200, timeout=20) for client in clients)

    # rollback.yml: every host back to the release before, one at a time.
    back = playbook.run("rollback.yml")
    assert [serving_release(app, f"/opt/{slug}") for app in apps] == release_one
    assert all(wait_for(lambda c=client: "Release two" not in c.get("/").text, timeout=20) for client in clients)
    print(
        f"\nfleet: first run {first.seconds:.0f} s, second {second.seconds:.0f} s (changed=0), release under load "
        f"{rolled.seconds:.0f} s ({requests} requests, {failed} failed), broken release {broken.seconds:.0f} s, "
        f"rollback {back.seconds:.0f} s"
    )
