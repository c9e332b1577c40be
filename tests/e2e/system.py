"""Host-side helpers: commands, users, directories, process trees, sockets.

Everything a case creates is registered on its Cleanup, which undoes it in
reverse order even when a check fails. Processes are tracked in a cgroup of
their own (as systemd would put a service), so every process of a server can
be listed and stopped by PID.
"""

import grp
import ipaddress
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from helpers import wait_for

CGROUP_ROOT = Path("/sys/fs/cgroup/unified")


def run(command, check=True, timeout=300, **kwargs):
    """Run a command, capture its output, fail with that output on error."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    result = subprocess.run([str(word) for word in command], check=False, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"command failed ({result.returncode}): {' '.join(map(str, command))}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


class Cleanup:
    """A stack of undo actions, run last-in first-out; errors are collected, not raised."""

    def __init__(self):
        self._actions = []
        self.errors = []

    def push(self, description, action, *args):
        self._actions.append((description, action, args))

    def run(self):
        while self._actions:
            description, action, args = self._actions.pop()
            try:
                action(*args)
            except Exception as error:  # noqa: BLE001 - every undo step must get its chance
                self.errors.append(f"{description}: {error!r}")


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def remove_user(name):
    """Delete a user and the group of the same name, if present."""
    if user_exists(name):
        run(["userdel", name], check=False)
    if group_exists(name):
        run(["groupdel", name], check=False)


def add_system_user(name, home="/nonexistent"):
    """A system user with a group of its own, no login shell and no home directory made."""
    run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            home,
            "--shell",
            "/usr/sbin/nologin",
            name,
        ]
    )


def ensure_system_account(name, cleanup):
    """Create a system user and group (e.g. RHEL's nginx/apache) unless present; remove it afterwards."""
    if user_exists(name):
        return
    add_system_user(name)
    cleanup.push(f"remove account {name}", remove_user, name)


def make_dir(path, cleanup, owner="root", group="root", mode=0o755):
    """Create a directory (and record its removal) with the given owner and mode."""
    path = Path(path)
    if not path.exists():
        top = path
        while not top.parent.exists():
            top = top.parent
        path.mkdir(parents=True)
        cleanup.push(f"remove {top}", remove_tree, top)
    shutil.chown(path, owner, group)
    path.chmod(mode)
    return path


def remove_tree(path):
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def free_port(port, timeout=10):
    """Fail when something keeps listening on the port a case is baked with."""

    def users():
        return [
            entry
            for table in ("/proc/net/tcp", "/proc/net/tcp6")
            for entry in listening_tcp(table).values()
            if entry[1] == port
        ]

    if not wait_for(lambda: not users(), timeout, interval=0.2):
        raise AssertionError(f"port {port} is in use on this machine ({users()}); change BASE_PORT in cases.py")


# --- process trees ---------------------------------------------------------


class ProcessTree:
    """A process started in its own cgroup, so all its descendants can be found.

    Falls back to the session id when cgroup v2 is not writable.
    """

    def __init__(self, name, command, log_path, env=None, cwd=None, umask=-1, pass_fds=()):
        self.name = name
        self.log_path = Path(log_path)
        self.cgroup = CGROUP_ROOT / f"e2e-{name}-{os.getpid()}"
        use_cgroup = CGROUP_ROOT.is_dir() and os.access(CGROUP_ROOT, os.W_OK)
        if use_cgroup:
            if self.cgroup.exists():
                self.cgroup.rmdir()
            self.cgroup.mkdir()
        else:
            self.cgroup = None
        cgroup_procs = str(self.cgroup / "cgroup.procs") if self.cgroup else None

        def enter_cgroup():
            if cgroup_procs:
                with open(cgroup_procs, "w") as procs:
                    procs.write(str(os.getpid()))

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            [str(word) for word in command],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=enter_cgroup,
            umask=umask,
            pass_fds=pass_fds,
        )
        self.pid = self.popen.pid

    def pids(self):
        """Every live process of the tree."""
        if self.cgroup is not None:
            try:
                text = (self.cgroup / "cgroup.procs").read_text()
            except FileNotFoundError:
                return []
            return [int(pid) for pid in text.split()]
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) == self.pid:
                        found.append(int(entry.name))
                except ProcessLookupError:
                    continue
        return found

    def alive(self):
        self.popen.poll()
        return bool(self.pids())

    def signal_main(self, signum):
        if self.popen.poll() is None:
            os.kill(self.pid, signum)

    def signal_all(self, signum):
        for pid in self.pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def wait_all(self, timeout):
        """Wait until no process of the tree is left; return the seconds it took or None."""
        start = time.monotonic()

        def finished():
            self.popen.poll()  # reaps the main process, so it leaves the list
            return not self.pids()

        if wait_for(finished, timeout, interval=0.05):
            return time.monotonic() - start
        return None

    def stop(self, signum=signal.SIGTERM, timeout=15):
        """Stop the whole tree by PID: signum first, SIGKILL to what is left after timeout."""
        if self.pids():
            self.signal_main(signum)
            if self.wait_all(timeout) is None:
                self.signal_all(signal.SIGKILL)
                self.wait_all(5)
        self.popen.poll()
        self._log.close()
        if self.cgroup is not None and self.cgroup.exists() and not self.pids():
            self.cgroup.rmdir()

    def log(self):
        return tail(self.log_path)


def tail(path, lines=80):
    """The last lines of a log file, for failure messages."""
    path = Path(path)
    if not path.exists():
        return f"({path} does not exist)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def process_name(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def process_ids(pid):
    """(uid, gid, supplementary gids) of a live process."""
    uid = gid = None
    groups = []
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            uid = int(line.split()[1])
        elif line.startswith("Gid:"):
            gid = int(line.split()[1])
        elif line.startswith("Groups:"):
            groups = [int(g) for g in line.split()[1:]]
    return uid, gid, groups


# --- sockets ---------------------------------------------------------------


def _hex_address(text):
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    if len(raw) == 4:
        host = ".".join(str(b) for b in reversed(raw))
    else:  # four 32-bit words, each in host (little-endian) byte order
        host = str(ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))))
    return host, int(port, 16)


def listening_tcp(table):
    """inode -> (host, port) of the listening TCP sockets in a /proc/net table."""
    found = {}
    path = Path(table)
    if not path.exists():
        return found
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":  # TCP_LISTEN
            found[int(fields[9])] = _hex_address(fields[1])
    return found


def listening_unix():
    """inode -> path of listening unix stream sockets."""
    found = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[3], 16) & 0x10000 and len(fields) >= 8:  # __SO_ACCEPTCON
            found[int(fields[6])] = fields[7]
    return found


def socket_inodes(pid):
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def listening_sockets(pids):
    """Every listening socket the processes hold: ('tcp', host, port) or ('unix', path)."""
    tcp = {**listening_tcp("/proc/net/tcp"), **listening_tcp("/proc/net/tcp6")}
    unix = listening_unix()
    found = set()
    for pid in pids:
        for inode in socket_inodes(pid):
            if inode in tcp:
                found.add(("tcp",) + tcp[inode])
            elif inode in unix:
                found.add(("unix", unix[inode]))
    return found
