"""Time `cruft update` of a generated project across one template release.

Each run creates a project with `cruft create` from a git copy of this template,
commits a change to a deploy file in the template, and times `cruft update -y`
(two renders, a diff, a three-way apply; no venv, no install, no network).

    python bench/cruft_update.py [--runs 5]

Needs git, cookiecutter and cruft (the tox environment has them). Prints each
run and the median in seconds.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent
CLUTTER = shutil.ignore_patterns(".git", ".tox", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache")
DEPLOY_FILE = "{{cookiecutter.project_slug}}/deploy/gunicorn/gunicorn.conf.py"
ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def run(*args, cwd):
    """Run a command quietly; stop with its output if it fails."""
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def commit(path, message):
    run("git", "add", "-A", cwd=path)
    run("git", "commit", "-qm", message, cwd=path)


def template_repo(workdir):
    """A git repository holding this template's work tree."""
    repo = workdir / "template"
    shutil.copytree(TEMPLATE, repo, ignore=CLUTTER)
    run("git", "init", "-q", "-b", "main", cwd=repo)
    commit(repo, "v1")
    return repo


def one_update(workdir, repo, number):
    """Create a project, release a template change, and time the update."""
    projects = workdir / f"run{number}"
    run(
        sys.executable,
        "-m",
        "cruft",
        "create",
        f"file://{repo}",
        "--no-input",
        "--output-dir",
        str(projects),
        "--extra-context",
        '{"create_venv": false}',
        cwd=workdir,
    )
    project = projects / "flask_stack_app"
    run("git", "init", "-q", "-b", "main", cwd=project)
    commit(project, "generated")
    deploy_file = repo / DEPLOY_FILE
    deploy_file.write_text(deploy_file.read_text() + f"# release {number + 2}\n")
    commit(repo, f"release {number + 2}")
    started = time.perf_counter()
    run(sys.executable, "-m", "cruft", "update", "-y", cwd=project)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        repo = template_repo(workdir)
        seconds = []
        for number in range(args.runs):
            seconds.append(one_update(workdir, repo, number))
            print(f"run {number + 1}: {seconds[-1]:.2f} s")
    print(f"cruft update, median of {args.runs}: {statistics.median(seconds):.2f} s")


if __name__ == "__main__":
    main()
