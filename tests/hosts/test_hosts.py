"""The test-host harness itself: hosts boot a real systemd, run hardened units, reboot, and leave nothing."""

import os
import textwrap
from pathlib import Path

import pytest

from . import host as hostlib

pytestmark = pytest.mark.e2e  # root, and hosts booted under systemd-nspawn

PROBE = textwrap.dedent(
    """\
    import os, socket, sys, time

    def attempt(action):
        try:
            action()
            return "allowed"
        except OSError as error:
            return type(error).__name__

    status = {line.split(":")[0]: line.split(":", 1)[1].strip() for line in open("/proc/self/status")}
    found = {
        "write /etc": attempt(lambda: open("/etc/probe-was-here", "w")),
        "write /usr": attempt(lambda: open("/usr/probe-was-here", "w")),
        "list /home": attempt(lambda: os.listdir("/home")),
        "CapEff": status["CapEff"],
        "Seccomp": status["Seccomp"],
        "uid": str(os.getuid()),
    }
    with open(os.path.join(os.environ["RUNTIME_DIRECTORY"], "found"), "w") as out:
        out.write(repr(found))
    print("probe is starting", flush=True)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.connect(os.environ["NOTIFY_SOCKET"])
    notify.send(b"READY=1")
    print("probe is ready", flush=True)
    while True:
        time.sleep(60)
    """
)

UNIT = textwrap.dedent(
    """\
    [Unit]
    Description=hardened Type=notify probe

    [Service]
    Type=notify
    ExecStart=/usr/bin/python3 /usr/local/lib/probe.py
    DynamicUser=yes
    RuntimeDirectory=probe
    ProtectSystem=strict
    ProtectHome=yes
    PrivateTmp=yes
    PrivateDevices=yes
    NoNewPrivileges=yes
    CapabilityBoundingSet=
    SystemCallFilter=@system-service
    MemoryDenyWriteExecute=yes
    RestrictAddressFamilies=AF_UNIX

    [Install]
    WantedBy=multi-user.target
    """
)


def host_name(name):
    return name.startswith(hostlib.PREFIX) and name[len(hostlib.PREFIX) :].isdigit()


def ours():
    """Every trace of test hosts on this machine (the session's mirror aside)."""
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return {
        "netns": [n for n in hostlib.run(["ip", "netns", "list"]).stdout.split() if host_name(n)],
        "links": [n for n in os.listdir("/sys/class/net") if host_name(n)],
        "mounts": [m for m in mounts if m.startswith(str(hostlib.WORK_ROOT))],
        "cgroups": [str(r / n) for r in hostlib.CGROUPS for n in os.listdir(r) if host_name(n)],
        "folders": os.listdir(hostlib.WORK_ROOT) if hostlib.WORK_ROOT.exists() else [],
        "rules": [r for r in hostlib.run(["ip", "rule", "list"]).stdout.splitlines() if hostlib.PREFIX in r],
    }


def test_hardened_notify_unit_runs_logs_and_comes_back_after_a_reboot(hosts):
    host = hosts.boot()
    host.sh(f"cat > /usr/local/lib/probe.py <<'EOF'\n{PROBE}EOF")
    host.sh(f"cat > /etc/systemd/system/probe.service <<'EOF'\n{UNIT}EOF")
    host.sh("systemctl daemon-reload && systemctl enable --now probe.service")
    assert host.run(["systemctl", "is-active", "probe"]).stdout.strip() == "active"
    journal = host.journal("probe")
    assert "probe is starting" in journal and "probe is ready" in journal, journal
    found = eval(host.read("/run/probe/found"))  # noqa: S307 - our own probe's repr of a dict of strings
    assert found["write /etc"] != "allowed" and found["write /usr"] != "allowed", found
    assert found["list /home"] != "allowed", found
    assert int(found["CapEff"], 16) == 0 and found["Seccomp"] == "2" and found["uid"] != "0", found
    assert host.ssh("systemctl is-active probe").stdout.strip() == "active"

    host.reboot()
    assert host.boots == 2
    assert host.run(["systemctl", "is-active", "probe"]).stdout.strip() == "active"
    this_boot = host.run(["journalctl", "-b", "-u", "probe", "-o", "cat", "--no-pager"]).stdout
    assert "probe is ready" in this_boot, this_boot


def test_hosts_reach_each_other_and_this_machine_only(hosts):
    first, second = hosts.boot(), hosts.boot()
    connect = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)"
    first.run(["python3", "-c", connect, second.address, "22"])
    assert second.ssh("hostname").stdout.strip() == second.name
    outside = first.run(["python3", "-c", connect, "192.0.2.1", "80"], check=False)
    assert "No route to host" in outside.stderr, outside.stderr  # the machine forwards to hosts only
    update = first.run(["apt-get", "update"], timeout=300)  # through the apt proxy on this machine
    assert "Err:" not in update.stdout and update.returncode == 0, update.stdout + update.stderr


def test_stopped_and_killed_hosts_leave_nothing(hosts):
    killed, stopped = hosts.boot(), hosts.boot()
    hosts.started.remove(killed)
    killed.nspawn.kill()  # as if the run had been killed: nothing removed, its lock released
    killed.nspawn.wait()
    killed._lock.close()
    assert killed.name in hostlib.leftovers()
    hostlib.sweep()  # what the next run does first; a live run's host stays
    assert hostlib.leftovers() == [stopped.name]
    hosts.stop_all()
    assert not any(ours().values()), ours()
