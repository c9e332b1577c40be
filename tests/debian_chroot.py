"""A fresh Debian 12 with only the distribution's Python: a cached debootstrap rootfs, a throw-away overlay per use."""

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

CACHE = Path("/var/cache/flask-stack/quickstart")
ROOTFS = CACHE / "rootfs"
MIRROR = "http://deb.debian.org/debian"
# The README's prerequisites: the distribution's Python and pipx; git for the first commit; what uWSGI builds with.
PACKAGES = ("python3", "pipx", "git", "ca-certificates", "gcc", "libc6-dev", "python3-dev")
STAMP = ROOTFS / ".flask-stack-packages"
# How this machine reaches the package index (its proxy, the certificate bundle pip must use): passed through.
NETWORK_SETTINGS = ("PIP_CERT", "PIP_DEFAULT_TIMEOUT", "SSL_CERT_FILE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def build_rootfs():
    """debootstrap the rootfs once (about 3 minutes); later calls reuse it."""
    if STAMP.exists() and STAMP.read_text().split() == list(PACKAGES):
        return ROOTFS
    scratch = CACHE / "rootfs.partial"
    shutil.rmtree(scratch, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    include = "--include=" + ",".join(PACKAGES)
    subprocess.run(["debootstrap", "--variant=minbase", include, "bookworm", str(scratch), MIRROR], check=True)
    subprocess.run(["chroot", str(scratch), "apt-get", "clean"], check=True)
    (scratch / ".flask-stack-packages").write_text("\n".join(PACKAGES) + "\n")
    shutil.rmtree(ROOTFS, ignore_errors=True)
    scratch.rename(ROOTFS)
    return ROOTFS


@contextlib.contextmanager
def debian_chroot(work):
    """Yield the root of a fresh Debian 12 (an overlay over the cached rootfs, under work), with /proc and /dev."""
    lower = build_rootfs()
    upper, scratch, merged = (work / name for name in ("upper", "overlay-work", "merged"))
    for path in (upper, scratch, merged):
        path.mkdir(parents=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={scratch}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    mounts = [merged]
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(merged / "proc")], check=True)
        mounts.append(merged / "proc")
        subprocess.run(["mount", "--rbind", "/dev", str(merged / "dev")], check=True)
        mounts.append(merged / "dev")
        # The package index is reached as from this machine: its resolver, and the certificate
        # authorities it trusts (a proxy in between may sign with its own).
        shutil.copy("/etc/resolv.conf", merged / "etc" / "resolv.conf")
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", merged / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        yield merged
    finally:
        for mount in reversed(mounts):
            subprocess.run(["umount", "--recursive", "--lazy", str(mount)], check=False)


def run_in(root, script, timeout):
    """Run a shell script as root in the chroot, with a clean login-like environment."""
    env = ["env", "-i", "HOME=/root", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C.UTF-8"]
    env += [f"{name}={os.environ[name]}" for name in NETWORK_SETTINGS if name in os.environ]
    return subprocess.run(
        ["chroot", str(root), *env, "sh", "-c", script], capture_output=True, text=True, timeout=timeout, check=False
    )
