"""pytest fixtures for test hosts: the image, the mirror, and booted hosts that are always removed."""

import fcntl
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers import unavailable

from . import host as hostlib
from . import image, mirror

TIMES = {}  # what the harness spent, for the terminal summary


def unsupported():
    """Why this machine cannot boot test hosts, or None."""
    if os.geteuid() != 0:
        return "test hosts need root"
    for tool in ("systemd-nspawn", "debootstrap", "nsenter", "ip", "ssh", "ssh-keygen", "systemd-id128"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs it)"
    if not Path("/usr/sbin/apt-cacher-ng").exists():
        return "apt-cacher-ng is not installed (.ci/run installs it)"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs"
    for root in hostlib.CGROUPS:
        if not os.access(root, os.W_OK):
            return f"{root} is not writable: hosts cannot get cgroups of their own"
    if not Path("/proc/sys/net/ipv4/conf/all/forwarding").exists() or not os.access("/run", os.W_OK):
        return "no network namespaces here"
    return None


def require_hosts():
    reason = unsupported()
    if reason:
        unavailable(f"cannot boot test hosts: {reason}")


@pytest.fixture(scope="session")
def host_image():
    """The cached rootfs; one session at a time boots hosts; leftovers of killed runs go first."""
    require_hosts()
    hostlib.LOCK_ROOT.mkdir(parents=True, exist_ok=True)
    with open(hostlib.LOCK_ROOT / "session.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        hostlib.sweep()
        rootfs, seconds = image.rootfs()
        if seconds:
            TIMES["image build"] = seconds
        yield rootfs


@pytest.fixture(scope="session")
def package_mirror(host_image):
    started = mirror.Mirror().start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def host_key(tmp_path_factory):
    key = tmp_path_factory.mktemp("hosts-ssh") / "id_ed25519"
    hostlib.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "flask-stack test hosts", "-f", key])
    return key


class Hosts:
    """Boots hosts for one test; stop_all() removes them all, whatever happened."""

    def __init__(self, rootfs, key):
        self.rootfs = rootfs
        self.key = key
        self.started = []

    def create(self):
        for index in range(1, 250):
            candidate = hostlib.Host(index, self.rootfs, self.key)
            try:
                candidate.create()
            except BlockingIOError:
                continue
            except BaseException:
                candidate.stop()
                raise
            self.started.append(candidate)
            return candidate
        raise AssertionError("no free test-host index")

    def boot(self):
        host = self.create()
        start = time.monotonic()
        state = host.boot()
        TIMES.setdefault("host boots", []).append(time.monotonic() - start)
        if state == "degraded":
            print(f"{host.name} booted degraded; failed units:\n{host.failed_units()}")
        return host

    def stop_all(self):
        errors = []
        while self.started:
            host = self.started.pop()
            try:
                host.stop()
            except Exception as error:  # noqa: BLE001 - every host must get its chance
                errors.append(f"{host.name}: {error}")
        assert not errors, "removing test hosts failed:\n" + "\n".join(errors)


@pytest.fixture
def hosts(host_image, package_mirror, host_key):
    made = Hosts(host_image, host_key)
    try:
        yield made
    finally:
        made.stop_all()


def summary(terminalreporter):
    if not TIMES or TIMES.pop("reported", False):
        return
    TIMES["reported"] = True
    terminalreporter.section("test hosts")
    if "image build" in TIMES:
        terminalreporter.write_line(f"image built in {TIMES['image build']:.1f} s")
    boots = TIMES.get("host boots", [])
    if boots:
        terminalreporter.write_line(
            f"{len(boots)} boots, {sum(boots) / len(boots):.1f} s on average, {max(boots):.1f} s at most"
        )
