"""Bake a case with the cookiecutter CLI and install it the way the README says.

One function per README step, each registering its undo on the Cleanup.
"""

import re
import shutil
import sys
from pathlib import Path

from helpers import read_env_file

from .system import add_system_user, make_dir, remove_tree, remove_user, run

TEMPLATE = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
ROOT_SHELL_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "USER": "root",
}  # world-readable; a Python under /root fails for service users


def uv():
    """uv, or None: the venv steps then use python -m venv + pip (slower)."""
    return shutil.which("uv")


class Wheelhouse:
    """uWSGI and mod_wsgi wheels built once per session with Debian's python3.

    Both compile against the Python that builds them, so they are built by
    /usr/bin/python3 itself and never come from a cache shared with another
    Python (pyenv's 3.11 has the same wheel tag). uv's own cache rebuilt
    uWSGI for every venv here (its sdist revision was refreshed each time).
    """

    BUILT = ("uwsgi", "mod_wsgi")

    def __init__(self, directory):
        self.dir = Path(directory)
        self.built = set()

    def ensure(self, package):
        if package not in self.BUILT or package in self.built:
            return
        builder = self.dir / "builder"
        if not (builder / "bin" / "pip").exists():
            tool = uv()
            if tool:
                run([tool, "venv", "--quiet", "--seed", "--python", SYSTEM_PYTHON, builder])
            else:
                run([SYSTEM_PYTHON, "-m", "venv", builder])
        run(
            [
                builder / "bin" / "python",
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-cache-dir",
                "--disable-pip-version-check",
                "--wheel-dir",
                self.dir / "wheels",
                package,
            ],
            timeout=900,
        )
        self.built.add(package)

    @property
    def wheels(self):
        return self.dir / "wheels"


def bake(case, output_dir):
    """Generate the project with the cookiecutter command line; return its path."""
    answers = [f"{key}={value}" for key, value in case.answers().items()]
    run([sys.executable, "-m", "cookiecutter", str(TEMPLATE), "--no-input", "-o", output_dir, *answers])
    project = Path(output_dir) / case.slug
    assert project.is_dir(), f"cookiecutter did not create {project}"
    return project


class Install:
    """What the README's deploy steps create for one case."""

    def __init__(self, case, project, cleanup):
        self.case = case
        self.project = project  # the baked tree
        self.cleanup = cleanup
        self.slug = case.slug
        self.root = Path(case.install_dir)
        self.venv = self.root / ".venv"
        self.env = read_env_file(project / ".env")
        self.user = self.group = case.rootless_user if case.rootless else case.slug
        rendered = case.rendered()
        self.env_file = Path(rendered["__env_file"])
        self.state_dir = Path(rendered["__state_dir"])

    @property
    def database_url(self):
        return self.env["FLASK_SQLALCHEMY_DATABASE_URI"]

    @property
    def sqlite_path(self):
        return Path(self.database_url.split("sqlite:///", 1)[1].split("?", 1)[0])

    # --- README steps ----------------------------------------------------

    def create_user(self):
        remove_user(self.user)  # leftovers of an interrupted run of the same case
        if self.case.rootless:
            run(["useradd", "--create-home", "--user-group", "--shell", "/bin/bash", self.user])
            self.cleanup.push(f"remove home of {self.user}", remove_tree, f"/home/{self.user}")
        else:
            add_system_user(self.user, home=self.root)
        self.cleanup.push(f"remove user {self.user}", remove_user, self.user)

    def copy_code(self):
        """Put the project in install_dir (as a git clone would: without the git-ignored .env)."""
        remove_tree(self.root)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.project, self.root, symlinks=True, ignore=shutil.ignore_patterns(".env"))
        self.cleanup.push(f"remove {self.root}", remove_tree, self.root)
        if self.case.rootless:
            shutil.copy2(self.project / ".env", self.root / ".env")  # the rootless env file lives here
            run(["chown", "-R", f"{self.user}:{self.group}", self.root])
        else:
            run(["chown", "-R", "root:root", self.root])
        run(["chmod", "-R", "u=rwX,go=rX", self.root])
        if self.case.rootless:  # the README's commands on the host: .env 0600, var/ and var/log/
            self.run_readme("Copy the project", ["install -d"], as_user=True)

    def create_venv(self, wheelhouse):
        """install_dir/.venv with the project and its [server] extra, on Debian's python3."""
        wheelhouse.ensure(self.case.wsgi_server)
        wheelhouse.wheels.mkdir(parents=True, exist_ok=True)
        tool = uv()
        if tool:
            run([tool, "venv", "--quiet", "--python", SYSTEM_PYTHON, self.venv])
            # --compile-bytecode as pip does: the service user cannot write __pycache__ in a root-owned venv.
            run(
                [
                    tool,
                    "pip",
                    "install",
                    "--quiet",
                    "--compile-bytecode",
                    "--find-links",
                    wheelhouse.wheels,
                    "--python",
                    self.venv / "bin" / "python",
                    f"{self.root}[server]",
                ],
                timeout=600,
            )
        else:
            run([SYSTEM_PYTHON, "-m", "venv", self.venv])
            run(
                [
                    self.venv / "bin" / "python",
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-cache-dir",
                    "--find-links",
                    wheelhouse.wheels,
                    f"{self.root}[server]",
                ],
                timeout=900,
            )
        if self.case.rootless:
            run(["chown", "-R", f"{self.user}:{self.group}", self.venv])
        run(["chmod", "-R", "go+rX", self.venv])

    def install_env_file(self):
        if self.case.rootless:
            return
        remove_tree(self.env_file.parent)
        make_dir(self.env_file.parent, self.cleanup, "root", self.group, 0o750)
        shutil.copyfile(self.project / ".env", self.env_file)
        shutil.chown(self.env_file, "root", self.group)
        self.env_file.chmod(0o640)

    # --- the README's own commands ------------------------------------------------

    def readme_blocks(self, title):
        """The ```sh blocks of the README step whose heading contains title."""
        text = (self.project / "README.md").read_text()
        parts = re.split(r"^### (.*)$", text, flags=re.M)
        for heading, body in zip(parts[1::2], parts[2::2], strict=True):
            if title.lower() in heading.lower():
                return re.findall(r"```sh\n(.*?)```", body, re.S)
        raise AssertionError(f"the generated README has no step '{title}'")

    def run_readme(self, title, wanted, as_user=False):
        """Run the blocks of a README step that contain one of the wanted words, as the README says.

        Blocks for what this machine cannot do (package installs, systemctl,
        SELinux, firewall, pg_hba.conf of the distribution) are left out by
        the choice of words.
        """
        blocks = [b for b in self.readme_blocks(title) if any(word in b for word in wanted)]
        assert blocks, f"the README step '{title}' has no commands with {wanted}"
        for block in blocks:
            command = ["bash", "-euo", "pipefail", "-c", block]
            if as_user:
                self.as_user(command)
            else:
                run(command, cwd=self.project, env=ROOT_SHELL_ENV)
        return blocks

    def create_database(self):
        """The README's 'Create the database' step: the role/user and database, or the SQLite folder."""
        if self.case.rootless:
            return  # SQLite under var/, made in the README's copy step
        if self.case.database == "postgresql":
            self._drop_postgresql()
            self.cleanup.push(f"drop PostgreSQL database {self.slug}", self._drop_postgresql)
            self.run_readme("Create the database", ["CREATE ROLE"])
        elif self.case.database == "mysql":
            self._drop_mysql()
            self.cleanup.push(f"drop MariaDB database {self.slug}", self._drop_mysql)
            self.run_readme("Create the database", ["CREATE USER"])
        else:
            remove_tree(self.state_dir)
            self.cleanup.push(f"remove {self.state_dir}", remove_tree, self.state_dir)
            self.run_readme("Create the database", ["install -d"])

    PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    MARIADB = ["mariadb", "-h", "127.0.0.1", "-P", "3306", "-u", "root"]

    def _drop_postgresql(self):
        run(self.PSQL + ["-c", f"DROP DATABASE IF EXISTS {self.slug} WITH (FORCE)"])
        run(self.PSQL + ["-c", f"DROP ROLE IF EXISTS {self.slug}"])

    def _drop_mysql(self):
        run(
            self.MARIADB
            + [
                "-e",
                f"DROP DATABASE IF EXISTS {self.slug}; "
                f"DROP USER IF EXISTS '{self.slug}'@'127.0.0.1'; "
                f"DROP USER IF EXISTS '{self.slug}'@'localhost';",
            ]
        )

    def as_user(self, command, **kwargs):
        """Run a command as the app user in install_dir, with a clean environment."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
        }
        return run(
            ["setpriv", "--reuid", self.user, "--regid", self.group, "--init-groups", "--", *command],
            env=env,
            cwd=self.root,
            **kwargs,
        )

    @property
    def home(self):
        return Path(f"/home/{self.user}") if self.case.rootless else self.root

    def init_db(self):
        """The README's schema step: flask --app <slug> -e <env file> init-db, as the app user."""
        if self.case.rootless:
            blocks = self.run_readme("Create the database", ["init-db"], as_user=True)
        else:
            blocks = self.run_readme("Create the schema", ["init-db"])
        assert all(str(self.env_file) in block for block in blocks), f"init-db without -e {self.env_file}: {blocks}"

    def dump_database(self):
        """The whole database as text, read with the database's own CLI."""
        database = self.case.database
        if database == "sqlite":
            return run(["sqlite3", "-readonly", self.sqlite_path, ".dump"]).stdout
        if database == "postgresql":
            return run(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "--data-only", self.slug]).stdout
        return run(["mariadb-dump", "-h", "127.0.0.1", "-u", "root", "--skip-extended-insert", self.slug]).stdout
