"""One test host: a booted systemd in a container of its own, with its own address.

Per host: an overlay over the cached rootfs, a network namespace with a veth
pair (10.213.N.1 on this machine's side, 10.213.N.2 in the host), a cgroup of its
own in the unified and the systemd hierarchy, and systemd-nspawn booting the
overlay in the background. Commands run inside through nsenter into the host's
PID 1, or over ssh with a throw-away key. stop() removes all of it; sweep()
removes what a killed run left behind.

Hosts talk only to each other and to this machine's 10.213 addresses: their
routes lead nowhere else (see network()).
"""

import contextlib
import fcntl
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from helpers import wait_for

PREFIX = "fsh"  # names of hosts, namespaces, veths and cgroups
WORK_ROOT = Path("/var/tmp/flask-stack-hosts")
LOCK_ROOT = Path("/run/flask-stack-hosts")
# A host needs a cgroup of its own in the unified hierarchy and, on a hybrid machine, in systemd's.
if Path("/sys/fs/cgroup/unified").is_dir():
    CGROUPS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"))
else:
    CGROUPS = (Path("/sys/fs/cgroup"),)
MIRROR_ADDRESS = "10.213.0.1"  # this machine's side: apt proxy and package index (mirror.py)
ROUTES_TABLE = "213"  # what a host may reach through this machine: the other hosts, nothing else
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(command, check=True, timeout=120, **kwargs):
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run([str(w) for w in command], check=False, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"command failed ({result.returncode}): {shlex.join(map(str, command))}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def _cgroup_pids(path):
    pids = []
    for procs in Path(path).rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in procs.read_text().split()]
    return pids


def _remove_cgroup(path):
    """rmdir a cgroup tree bottom-up (a cgroup with children cannot go)."""
    path = Path(path)
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            child.rmdir()
    path.rmdir()


def _is_mounted(path):
    target = str(path)
    return any(line.split()[1] == target for line in Path("/proc/self/mounts").read_text().splitlines())


class Host:
    def __init__(self, index, rootfs, key):
        self.index = index
        self.name = f"{PREFIX}{index}"
        self.address = f"10.213.{index}.2"
        self.gateway = f"10.213.{index}.1"
        self.rootfs = Path(rootfs)
        self.key = Path(key)  # the private key; key.pub goes to root's authorized_keys
        self.dir = WORK_ROOT / self.name
        self.merged = self.dir / "merged"
        self.console = self.dir / "console.log"
        self.nspawn = None
        self.boots = 0
        self._lock = None

    # --- set up -------------------------------------------------------------------

    def create(self):
        """Claim the index, then make the overlay, the network and the cgroups."""
        LOCK_ROOT.mkdir(parents=True, exist_ok=True)
        self._lock = open(LOCK_ROOT / f"{self.name}.lock", "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: taken by a live run
        remove(self.name)  # leftovers of a killed run with this index
        self.overlay()
        self.network()
        for root in CGROUPS:
            (root / self.name).mkdir()
        return self

    def overlay(self):
        for part in ("upper", "work", "merged"):
            (self.dir / part).mkdir(parents=True)
        options = f"lowerdir={self.rootfs},upperdir={self.dir / 'upper'},workdir={self.dir / 'work'}"
        run(["mount", "-t", "overlay", "overlay", "-o", options, self.merged])
        etc = self.merged / "etc"
        (etc / "machine-id").write_text(run(["systemd-id128", "new"]).stdout)
        (etc / "hostname").unlink(missing_ok=True)  # then -M NAME is the host name
        (etc / "resolv.conf").unlink(missing_ok=True)
        # No resolver: names fail at once instead of waiting for one that cannot be reached.
        (etc / "resolv.conf").write_text("# test host: no resolver, hosts are reached by address\n")
        with (etc / "hosts").open("a") as hosts:
            hosts.write(f"{self.address} {self.name}\n")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", etc / "ssh/ssh_host_ed25519_key"])
        ssh = self.merged / "root/.ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        (ssh / "authorized_keys").chmod(0o600)
        # The local mirror, as a server without internet would use one (mirror.py).
        (etc / "apt/apt.conf.d/01proxy").write_text(f'Acquire::http::Proxy "http://{MIRROR_ADDRESS}:3142";\n')
        (etc / "pip.conf").write_text(
            f"[global]\nindex-url = http://{MIRROR_ADDRESS}:3141/simple/\ntrusted-host = {MIRROR_ADDRESS}\n"
        )

    def network(self):
        ns = self.name
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", self.name, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.name])
        run(["ip", "link", "set", self.name, "up"])
        run(["ip", "-n", ns, "addr", "add", f"{self.address}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        run(["ip", "-n", ns, "route", "add", "default", "via", self.gateway])
        # Forward what comes from this host by a table that knows only the hosts' networks.
        run(["ip", "route", "replace", "unreachable", "default", "table", ROUTES_TABLE])
        run(["ip", "route", "replace", f"10.213.{self.index}.0/24", "dev", self.name, "table", ROUTES_TABLE])
        run(["ip", "rule", "add", "iif", self.name, "lookup", ROUTES_TABLE, "pref", "2130"])
        Path(f"/proc/sys/net/ipv4/conf/{self.name}/forwarding").write_text("1")

    # --- boot and stop --------------------------------------------------------------

    def boot(self, timeout=60):
        """Start systemd-nspawn in the background and wait until the host's systemd is up."""
        cgroups = [str(root / self.name / "cgroup.procs") for root in CGROUPS]

        def enter_cgroups():
            for procs in cgroups:
                with open(procs, "w") as file:
                    file.write(str(os.getpid()))

        self.boots += 1
        with open(self.console, "a") as console:
            console.write(f"===== boot {self.boots} =====\n")
            console.flush()
            self.nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "--quiet",
                    f"--directory={self.merged}",
                    "--boot",
                    f"--machine={self.name}",
                    "--register=no",
                    "--keep-unit",
                    f"--network-namespace-path=/run/netns/{self.name}",
                    "--capability=CAP_NET_ADMIN",
                    "--console=pipe",
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                preexec_fn=enter_cgroups,
                start_new_session=True,
            )
        state = wait_for(self._system_state, timeout, 0.2)
        if state not in ("running", "degraded"):
            raise AssertionError(f"{self.name} did not boot within {timeout} s ({state!r}):\n{self.console_tail()}")
        return state

    def init_pid(self):
        path = CGROUPS[0] / self.name / "payload/init.scope/cgroup.procs"
        with contextlib.suppress(OSError, IndexError, ValueError):
            return int(path.read_text().split()[0])
        return None

    def _system_state(self):
        if self.nspawn.poll() is not None:
            return f"nspawn exited {self.nspawn.returncode}"
        if self.init_pid() is None:
            return None
        state = self.run(["systemctl", "is-system-running"], check=False, timeout=10).stdout.strip()
        return state if state in ("running", "degraded") else None

    def failed_units(self):
        return self.run(["systemctl", "--failed", "--plain", "--no-legend"], check=False).stdout.strip()

    def reboot(self, timeout=60):
        """`systemctl reboot` inside; nspawn exits with 133 and the same upper layer boots again."""
        self.run(["systemctl", "reboot"], check=False)
        try:
            code = self.nspawn.wait(timeout)
        except subprocess.TimeoutExpired as error:
            raise AssertionError(f"{self.name} did not go down for the reboot:\n{self.console_tail()}") from error
        assert code == 133, f"{self.name}: nspawn exited {code} on reboot, not 133:\n{self.console_tail()}"
        return self.boot(timeout)

    def poweroff(self, timeout=30):
        """TERM to nspawn shuts the host down in order; KILL after timeout."""
        if self.nspawn is None or self.nspawn.poll() is not None:
            return
        self.nspawn.send_signal(signal.SIGTERM)
        try:
            self.nspawn.wait(timeout)
        except subprocess.TimeoutExpired:
            self.nspawn.kill()
            self.nspawn.wait(10)

    def stop(self):
        """Power off and remove everything the host was made of."""
        try:
            self.poweroff()
        finally:
            remove(self.name)
            if self._lock is not None:
                self._lock.close()
                self._lock = None

    # --- inside -----------------------------------------------------------------------

    def command(self, command, env=None):
        pid = self.init_pid()
        assert pid, f"{self.name} is not running"
        variables = {"PATH": HOST_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root", "TERM": "dumb"}
        variables.update(env or {})
        return ["nsenter", "-t", pid, "-a", "--", "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in variables.items())] + [
            str(word) for word in command
        ]

    def run(self, command, check=True, timeout=120, env=None, **kwargs):
        """A command inside the host, as root, with a login-like environment."""
        return run(self.command(command, env), check=check, timeout=timeout, **kwargs)

    def sh(self, script, check=True, timeout=600, **kwargs):
        """A shell script inside the host (bash -e, as a root shell on the server would run it)."""
        return self.run(["bash", "-euo", "pipefail", "-c", script], check=check, timeout=timeout, **kwargs)

    def ssh(self, command, check=True, timeout=60):
        options = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
        options += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-i", self.key]
        return run(["ssh", *options, f"root@{self.address}", command], check=check, timeout=timeout)

    def read(self, path):
        """A file of the running host, read through its PID 1's root."""
        return (Path(f"/proc/{self.init_pid()}/root") / str(path).lstrip("/")).read_text()

    def journal(self, unit, lines=200):
        command = ["journalctl", "--no-pager", "-q", "-o", "cat", "-n", str(lines), "-u", unit]
        return self.run(command, check=False).stdout

    def console_tail(self, lines=60):
        if not self.console.exists():
            return "(no console output)"
        return "\n".join(self.console.read_text(errors="replace").splitlines()[-lines:])


# --- removal: for a stopped host, and for what a killed run left ------------------------


def remove(name):
    """Remove every trace of host NAME on this machine: processes, cgroups, mounts, network, files."""
    errors = []
    for root in CGROUPS:
        path = root / name
        for _ in range(50):
            pids = _cgroup_pids(path)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        try:
            _remove_cgroup(path)
        except OSError as error:
            errors.append(f"cgroup {path}: {error}")
    merged = WORK_ROOT / name / "merged"
    for _ in range(20):
        if not _is_mounted(merged):
            break
        run(["umount", merged], check=False)
        if _is_mounted(merged):
            time.sleep(0.2)
    if _is_mounted(merged):
        run(["umount", "-l", merged], check=False)
    if Path(f"/run/netns/{name}").exists():
        run(["ip", "netns", "del", name], check=False)
    if Path(f"/sys/class/net/{name}").exists():
        run(["ip", "link", "del", name], check=False)
    while run(["ip", "rule", "del", "iif", name, "lookup", ROUTES_TABLE], check=False).returncode == 0:
        pass
    index = name[len(PREFIX) :]
    run(["ip", "route", "del", f"10.213.{index}.0/24", "table", ROUTES_TABLE], check=False)
    if (WORK_ROOT / name).exists() and not _is_mounted(merged):
        run(["rm", "-rf", "--one-file-system", WORK_ROOT / name], check=False)
    if (WORK_ROOT / name).exists():
        errors.append(f"{WORK_ROOT / name} is left")
    if errors:
        raise AssertionError(f"could not remove host {name}: " + "; ".join(errors))


def leftovers():
    """Names of hosts that exist in any form: namespace, veth, cgroup, work folder."""
    names = set()
    places = [Path("/run/netns"), Path("/sys/class/net"), WORK_ROOT, *CGROUPS]
    for place in places:
        if place.is_dir():
            names |= {p.name for p in place.iterdir() if p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()}
    return sorted(names)


def sweep():
    """Remove the hosts of runs that are gone (their index lock is free); leave live runs' hosts alone."""
    LOCK_ROOT.mkdir(parents=True, exist_ok=True)
    for name in leftovers():
        with open(LOCK_ROOT / f"{name}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            remove(name)
