"""The test hosts' root filesystem: Debian bookworm, built once with debootstrap and cached.

The cache lives outside the clone (CACHE_ROOT/<hash>/rootfs) so that every run and
every clone on a machine reuse it; the hash covers the package lists and the build
steps, so changing them builds a new image. Hosts boot from it read-only,
through an overlay of their own.

Tools without a service go into the image installed. The servers a generated
README installs itself (nginx, Apache, PostgreSQL, MariaDB, supervisord) are
installed with their dependencies and then purged, so that their packages are in
the image's apt archive and their libraries on disk: the README's `apt-get install`
then unpacks, configures and starts them as on a fresh server, without a download.
"""

import contextlib
import fcntl
import hashlib
import inspect
import os
import shutil
import subprocess
import time
from pathlib import Path

CACHE_ROOT = Path(os.environ.get("FLASK_STACK_HOSTS_CACHE", "/var/cache/flask-stack/hosts"))
SUITE = "bookworm"
BOOT_PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2"]
INSTALLED = [
    "ca-certificates",
    "curl",
    "procps",
    "python3-venv",
    "python3-dev",
    "gcc",
    "libc6-dev",
    "apache2-dev",
    "rsync",
    "ufw",
    "sqlite3",
    "pebble",  # the ACME server that stands in for Let's Encrypt in the TLS cases
    "openssl",
]
DOWNLOADED = ["nginx", "apache2", "postgresql", "mariadb-server", "supervisor", "certbot"]
# What the README's install then unpacks and sets up; their libraries stay installed (unpacking
# PostgreSQL's JIT and MariaDB's dependencies per host took a minute).
SERVER_PACKAGES = [
    "nginx",
    "nginx-common",
    "apache2",
    "apache2-bin",
    "apache2-data",
    "apache2-utils",
    "postgresql",
    "postgresql-15",
    "postgresql-common",
    "mariadb-server",
    "mariadb-server-core",
    "supervisor",
    "certbot",
]
DEBIAN_FRONTEND = {"DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"}


def image_hash():
    """What the image is made of: the suite, the package lists and the build steps."""
    made_of = repr((SUITE, BOOT_PACKAGES, INSTALLED, DOWNLOADED, SERVER_PACKAGES))
    made_of += inspect.getsource(build) + inspect.getsource(_chroot_mounts)
    return hashlib.sha256(made_of.encode()).hexdigest()[:16]


def mirrors():
    """The Debian archive and security archive URIs this machine's apt uses."""
    found = {}
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            uris = words[1:] if words[:1] == ["URIs:"] else words[1:2] if words[:1] == ["deb"] else []
            for uri in uris:
                if "debian-security" in uri:
                    found.setdefault("security", uri.rstrip("/"))
                elif uri.rstrip("/").endswith("/debian"):
                    found.setdefault("archive", uri.rstrip("/"))
    found.setdefault("archive", "http://deb.debian.org/debian")
    found.setdefault("security", "http://deb.debian.org/debian-security")
    return found


def _run(command, **kwargs):
    result = subprocess.run([str(w) for w in command], check=False, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        command_line = " ".join(map(str, command))
        raise RuntimeError(f"{command_line} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


@contextlib.contextmanager
def _chroot_mounts(root):
    """/proc, /sys and /dev in the chroot, and services kept from starting on this machine."""
    mounted = []
    try:
        for source, target, options in (
            ("proc", "proc", ["-t", "proc"]),
            ("sysfs", "sys", ["-t", "sysfs"]),
            ("/dev", "dev", ["--rbind"]),
        ):
            _run(["mount", *options, source, root / target])
            mounted.append(root / target)
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        yield
    finally:
        (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
        for target in reversed(mounted):
            subprocess.run(["umount", "-R", "-l", str(target)], check=False)


def _chroot(root, *command):
    return _run(["chroot", root, *command], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **DEBIAN_FRONTEND})


def build(root):
    """debootstrap + the packages, into root (a new directory)."""
    archive = mirrors()
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(BOOT_PACKAGES),
            SUITE,
            root,
            archive["archive"],
        ],
        timeout=1800,
    )
    (root / "etc/apt/sources.list").write_text(
        f"deb {archive['archive']} {SUITE} main\n"
        f"deb {archive['archive']} {SUITE}-updates main\n"
        f"deb {archive['security']} {SUITE}-security main\n"
    )
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    with _chroot_mounts(root):
        _chroot(root, "apt-get", "update", "-qq")
        _chroot(root, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *INSTALLED)
        _chroot(root, "apt-get", "install", "-y", "-qq", *DOWNLOADED)
        _chroot(root, "apt-get", "purge", "-y", "-qq", *SERVER_PACKAGES)  # and what depends on them
    # The per-host parts: each host gets its own machine-id, host name and resolver.
    for name in ("etc/machine-id", "etc/hostname", "etc/resolv.conf", "var/lib/dbus/machine-id"):
        (root / name).unlink(missing_ok=True)
    (root / "etc/machine-id").write_text("")
    for key in root.glob("etc/ssh/ssh_host_*"):
        key.unlink()  # each host gets its own (host.py)
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)


def rootfs(log=print):
    """The cached rootfs for this image hash, built first when missing. Returns (path, seconds spent building)."""
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    target = CACHE_ROOT / image_hash()
    with open(CACHE_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "rootfs").is_dir():
            return target / "rootfs", 0.0
        log(f"building the test-host image {target} (debootstrap {SUITE}, a few minutes, once)")
        start = time.monotonic()
        partial = CACHE_ROOT / f"{image_hash()}.partial"
        if partial.exists():
            _run(["rm", "-rf", "--one-file-system", partial])
        (partial / "rootfs").mkdir(parents=True)
        build(partial / "rootfs")
        (partial / "packages.txt").write_text(_chroot(partial / "rootfs", "dpkg-query", "-W").stdout)
        partial.rename(target)
        for old in CACHE_ROOT.iterdir():  # images of earlier package lists or build steps
            if old.is_dir() and old != target:
                _run(["rm", "-rf", "--one-file-system", old])
        return target / "rootfs", time.monotonic() - start
