"""The local mirror the test hosts install from, as a server without internet would.

On this machine's side, at 10.213.0.1 (on a link of its own that only the hosts
route to): Debian's apt-cacher-ng as the hosts' apt proxy (port 3142), and a PEP 503
package index (a folder of wheels and sdists, port 3141) that the hosts'
/etc/pip.conf names. Both run in a cgroup of their own so that a killed run's
processes are found and stopped by the next run.
"""

import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import connectable, wait_for

from . import image
from .host import CGROUPS, MIRROR_ADDRESS, _cgroup_pids, _remove_cgroup, run

NAME = "fshmirror"
CACHE = Path(os.environ.get("FLASK_STACK_HOSTS_CACHE", "/var/cache/flask-stack/hosts")).parent
APT_CACHE = CACHE / "apt-cacher-ng"
PACKAGES = CACHE / "pip-index"  # the files; simple/ is generated from them
APT_PORT = 3142
PIP_PORT = 3141
BUILD_REQUIREMENTS = ["hatchling"]  # the template's build backend: pip builds the project in the host


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def project_of(filename):
    if filename.endswith(".whl"):
        return normalize(filename.split("-")[0])
    return normalize(re.sub(r"-\d.*$", "", filename.removesuffix(".tar.gz").removesuffix(".zip")))


class Mirror:
    def __init__(self):
        self.processes = []
        self.cgroups = [root / NAME for root in CGROUPS]

    def start(self):
        remove()
        # A link of this machine's own for the address (a veth pair: the kernel here has no dummy links).
        run(["ip", "link", "add", NAME, "type", "veth", "peer", "name", f"{NAME}p"])
        run(["ip", "addr", "add", f"{MIRROR_ADDRESS}/32", "dev", NAME])
        run(["ip", "link", "set", f"{NAME}p", "up"])
        run(["ip", "link", "set", NAME, "up"])
        for cgroup in self.cgroups:
            cgroup.mkdir()
        for folder in (APT_CACHE / "cache", APT_CACHE / "log", APT_CACHE / "run", PACKAGES):
            folder.mkdir(parents=True, exist_ok=True)
        self.write_index()
        # The distribution's configuration, with this machine's own Debian mirror as the upstream.
        conf = APT_CACHE / "conf"
        shutil.rmtree(conf, ignore_errors=True)
        shutil.copytree("/etc/apt-cacher-ng", conf)
        (conf / "backends_debian").write_text(image.mirrors()["archive"] + "/\n")
        log = open(APT_CACHE / "log" / "daemons.log", "ab")
        self._start(
            [
                "/usr/sbin/apt-cacher-ng",
                "-c",
                conf,
                "ForeGround=1",
                f"BindAddress={MIRROR_ADDRESS}",
                f"Port={APT_PORT}",
                f"CacheDir={APT_CACHE / 'cache'}",
                f"LogDir={APT_CACHE / 'log'}",
                f"PidFile={APT_CACHE / 'run' / 'pid'}",
                f"SocketPath={APT_CACHE / 'run' / 'socket'}",
            ],
            log,
        )
        self._start(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                MIRROR_ADDRESS,
                "--directory",
                PACKAGES,
                str(PIP_PORT),
            ],
            log,
        )
        for port in (APT_PORT, PIP_PORT):
            assert wait_for(lambda p=port: connectable((MIRROR_ADDRESS, p)), 20), (
                f"the mirror does not listen on {MIRROR_ADDRESS}:{port}"
            )
        return self

    def _start(self, command, log):
        procs = [str(cgroup / "cgroup.procs") for cgroup in self.cgroups]

        def enter():
            for path in procs:
                with open(path, "w") as file:
                    file.write(str(os.getpid()))

        self.processes.append(
            subprocess.Popen(
                [str(w) for w in command],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=enter,
                start_new_session=True,
            )
        )

    def stop(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        remove()

    # --- the package index -------------------------------------------------------

    def add(self, *requirements, python=sys.executable):
        """Download requirements (and their dependencies) from PyPI into the index, as a mirror sync would."""
        run(
            [
                python,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--dest",
                PACKAGES,
                *requirements,
            ],
            timeout=600,
        )
        self.write_index()

    def add_file(self, path):
        shutil.copy2(path, PACKAGES / Path(path).name)
        self.write_index()

    def files(self, project, kind):
        """The index's files of a project: kind is ".whl" or ".tar.gz"."""
        return sorted(
            p for p in PACKAGES.iterdir() if p.name.endswith(kind) and project_of(p.name) == normalize(project)
        )

    def write_index(self):
        """simple/<project>/index.html for every file (PEP 503), with its sha256."""
        simple = PACKAGES / "simple"
        simple.mkdir(parents=True, exist_ok=True)
        projects = {}
        for path in sorted(PACKAGES.iterdir()):
            if path.is_file() and path.name.endswith((".whl", ".tar.gz", ".zip")):
                projects.setdefault(project_of(path.name), []).append(path)
        for project, files in projects.items():
            folder = simple / project
            folder.mkdir(parents=True, exist_ok=True)
            links = []
            for path in files:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                name = html.escape(path.name)
                links.append(f'<a href="../../{name}#sha256={digest}">{name}</a><br>')
            body = "\n".join(links)
            (folder / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n")
        names = "\n".join(f'<a href="{p}/">{p}</a><br>' for p in sorted(projects))
        (simple / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{names}\n</body></html>\n")


def remove():
    """Stop a mirror a killed run left, and remove its interface and cgroups."""
    import signal

    for root in CGROUPS:
        path = root / NAME
        for pid in _cgroup_pids(path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda p=path: not _cgroup_pids(p), 10)
        if path.is_dir():
            _remove_cgroup(path)
    if Path(f"/sys/class/net/{NAME}").exists():
        run(["ip", "link", "del", NAME])
