"""Finish the generated project: drop what the stack does not use, write its
secrets, create its virtualenv, make it a git repository, say what to do next.

Every step is idempotent. When cruft renders the template (create, update,
diff), no virtualenv is made and nothing is installed, so an update stays fast
and touches no network; the .env it writes there is skipped by cruft.
"""

import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

# Values reach Python as JSON so that quotes, backslashes and braces stay data.
ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""


def unused_paths(answers):
    """The deploy folders of the choices not taken, and of those the chosen stack does without."""
    choices, install = answers["_stack"]["choices"], answers["_stack"]["install"]
    every = {path for entries in choices.values() for entry in entries.values() for path in entry["deploy"]}
    every |= {path for entry in install.values() for path in entry["deploy"]}
    used = {path for key, entries in choices.items() for path in entries[answers[key]]["deploy"]}
    used |= set(install["rootless" if answers["rootless"] is True else "system"]["deploy"])
    if choices["wsgi_server"][answers["wsgi_server"]]["in_front_server"]:
        # The front server's own unit runs the app: no unit of ours.
        used.discard("deploy/systemd")
    if not answers["__socket"]:
        # tmpfiles.d only makes the socket's directory (under systemd, the socket unit does).
        used.discard("deploy/tmpfiles")
    unused = every - used
    # A file inside a folder that goes anyway (deploy/apache/http.conf of an nginx stack) needs no entry.
    return sorted(path for path in unused if not any(path.startswith(folder + "/") for folder in unused))


ANSIBLE_TASK_FILE = re.compile(r"^\s+ansible\.builtin\.(?:import|include)_tasks: (?:tasks/)?(\S+\.yml)$", re.MULTILINE)


def unused_ansible_tasks(root):
    """The task files of deploy/ansible/ that no playbook of this stack reaches (site.yml names the stack's own)."""
    ansible = root / "deploy" / "ansible"
    if not ansible.is_dir():
        return []
    reached, pending = set(), [ansible / "site.yml", ansible / "rollback.yml"]
    while pending:
        for name in ANSIBLE_TASK_FILE.findall(pending.pop().read_text()):
            if name not in reached:
                reached.add(name)
                pending.append(ansible / "tasks" / name)
    unused = [path.name for path in (ansible / "tasks").glob("*.yml") if path.name not in reached]
    return sorted(f"deploy/ansible/tasks/{name}" for name in unused)


def remove_paths(root, paths):
    """Delete the given files or folders below root, if present."""
    for relative in paths:
        path = root / relative
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def env_file_text(answers):
    """The production settings with freshly generated secrets."""
    slug, database = answers["project_slug"], answers["database"]
    password = secrets.token_hex(16)
    url_shape = answers["_stack"]["choices"]["database"][database]["url"]
    url = url_shape.format(slug=slug, password=password, state_dir=answers["__state_dir"])
    lines = [
        f"# Production settings of {slug}. Secret: never commit it.",
        f"# Install it as {answers['__env_file']} (see README.md).",
        f"FLASK_SECRET_KEY={secrets.token_hex(32)}",
        f"FLASK_SQLALCHEMY_DATABASE_URI={url}",
    ]
    if database != "sqlite":
        lines.append(f"DB_PASSWORD={password}")
    return "\n".join(lines) + "\n"


def write_env_file(path, answers):
    """Write .env (mode 0600) unless it exists: secrets are made once."""
    if path.exists():
        print(f"Keeping the existing {path.name}")
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as env_file:
        env_file.write(env_file_text(answers))
    extra = " and database password" if answers["database"] != "sqlite" else ""
    if rendered_by_cruft(answers):
        # cruft update renders twice into scratch copies; the project's own .env is skipped there.
        extra += " (under `cruft update` a scratch copy: your project's .env is kept)"
    print(f"Wrote {path.name} with a new SECRET_KEY{extra}")


def venv_commands(python=sys.executable):
    """The commands that create .venv and install the project for development from its lock file."""
    if shutil.which("uv"):
        pip = ["uv", "pip", "install", "--quiet", "--python", ".venv/bin/python"]
        # --seed: pip too, for the README's .venv/bin/pip commands.
        create = ["uv", "venv", "--quiet", "--seed", "--python", python, ".venv"]
    else:
        pip = [".venv/bin/python", "-m", "pip", "install", "--quiet"]
        create = [python, "-m", "venv", ".venv"]
    # The locked versions, checked against their hashes; then the project itself, without resolving again.
    return [create, [*pip, "--require-hashes", "-r", "requirements-dev.txt"], [*pip, "--no-deps", "-e", "."]]


def create_venv(root):
    """Create .venv and install the project; on failure say how to retry."""
    if (root / ".venv" / "bin" / "python").exists():
        print("Keeping the existing .venv")
        return True
    commands = venv_commands()
    for command in commands:
        print("$ " + shlex.join(command), flush=True)
        if subprocess.run(command, cwd=root, check=False).returncode != 0:
            print(
                f"\nCreating the virtualenv failed; the project is in {root}.\n"
                f"Retry with:\n  cd {shlex.quote(str(root))}\n" + "".join(f"  {shlex.join(c)}\n" for c in commands),
                file=sys.stderr,
            )
            return False
    return True


def rendered_by_cruft(answers):
    """cruft records the template commit; plain cookiecutter does not."""
    return "_commit" in answers


def git_environment():
    """The caller's environment without GIT_DIR and friends, which would point git elsewhere."""
    return {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}


def inside_git_work_tree(path):
    """Tell whether path lies in a git work tree (the project is then part of that repository)."""
    result = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
        env=git_environment(),
    )
    return result.stdout.strip() == "true"


def init_git(root, answers):
    """Make root a git repository with a first commit, if git is there and root is in no repository yet
    (not its own from an earlier run, nor one it lies in)."""
    if shutil.which("git") is None or inside_git_work_tree(root):
        return False
    env = git_environment()
    configured = subprocess.run(["git", "config", "user.email"], capture_output=True, check=False, env=env).stdout
    # Without a configured identity, the first commit is by the author named in the answers.
    identity = [] if configured.strip() else ["-c", f"user.name={answers['author_name']}"]
    identity += [] if configured.strip() else ["-c", f"user.email={answers['author_email']}"]
    commands = [
        ["git", "init", "--quiet"],
        ["git", "add", "--all"],
        ["git", *identity, "commit", "--quiet", "--message", "Generate the project from the flask-stack template"],
    ]
    for command in commands:
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False, env=env)
        if result.returncode != 0:
            print(f"git: {shlex.join(command)} failed, the project is not committed:\n{result.stderr}", file=sys.stderr)
            return False
    print("Initialised a git repository with a first commit")
    return True


def next_steps(root, answers, venv_ready):
    """What to do after generating: where the project is, how to run and test it, where the deploy steps are."""
    slug = answers["project_slug"]
    lines = ["", "Next steps:", f"  cd {shlex.quote(str(root))}"]
    if not venv_ready:
        lines.append("  python3 -m venv .venv && .venv/bin/pip install --require-hashes -r requirements-dev.txt")
        lines.append("  .venv/bin/pip install --no-deps -e .   # the virtualenv first")
    lines += [
        f"  FLASK_SKIP_DOTENV=1 .venv/bin/flask --app {slug} run --debug   # run it on http://127.0.0.1:5000/",
        "  .venv/bin/pytest   # run its tests",
        "README.md has the deploy steps for your server.",
    ]
    return "\n".join(lines)


def main():
    answers = json.loads(ANSWERS_JSON)
    root = Path.cwd()
    remove_paths(root, unused_paths(answers))
    remove_paths(root, unused_ansible_tasks(root))
    write_env_file(root / ".env", answers)
    if rendered_by_cruft(answers):
        if answers["create_venv"]:
            print("Rendered by cruft: not creating .venv (see README.md, 'Run it locally').")
        return
    venv_ready = create_venv(root) if answers["create_venv"] else False
    init_git(root, answers)
    print(next_steps(root, answers, venv_ready))


if __name__ == "__main__":
    main()
