"""README.md's Quick start, verbatim, on a fresh Debian 12 with only the distribution's Python and pipx."""

import os
import re
import shutil
import subprocess

import pytest
from debian_chroot import debian_chroot, run_in
from helpers import TEMPLATE, require, require_tool

# The template as the README names it, and where this checkout goes instead: the test tries this version.
PUBLISHED = "gh:org/flask-stack"
CLONE = "/root/flask-stack"
TIMEOUT = 1800


def quick_start_commands():
    """The one command of each Quick start section, as the README prints them."""
    text = (TEMPLATE / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    generate = quick_start.split("### Develop the template")[0]
    develop = quick_start.split("### Develop the template")[1]
    (first,) = re.findall(r"```sh\n(.*?)\n```", generate, re.DOTALL)
    (second,) = re.findall(r"```sh\n(.*?)\n```", develop, re.DOTALL)
    return first, second


def copy_checkout(destination):
    """This checkout's files (tracked and new, not ignored) without its git history or caches."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (entry.decode() for entry in listed)):
        source = TEMPLATE / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


@pytest.fixture
def fresh_debian(tmp_path):
    require(os.geteuid() == 0, "the quick-start test needs root (chroot and mounts)")
    require_tool("debootstrap", "builds the Debian 12 rootfs")
    with debian_chroot(tmp_path) as root:
        yield root


def test_quick_start_commands_work_verbatim_on_debian_12(fresh_debian):
    """Generate a project with the first command; run the template's tests with the second, in a clone."""
    root = fresh_debian
    generate, develop = quick_start_commands()
    assert generate == f"pipx run cookiecutter {PUBLISHED} --no-input"
    assert develop == "pipx run tox"

    # Only the distribution's Python: pip into it is refused or absent.
    refused = run_in(root, "python3 -m pip install cookiecutter", timeout=120)
    assert refused.returncode != 0

    copy_checkout(root / CLONE.lstrip("/"))
    made = run_in(root, f"cd /root && {generate.replace(PUBLISHED, CLONE)}", timeout=TIMEOUT)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Next steps:" in made.stdout
    project = root / "root" / "flask_stack_app"
    assert (project / ".venv" / "bin" / "python").exists()
    # The next steps' test command passes in the new project, which has its first commit.
    tested = run_in(root, "cd /root/flask_stack_app && .venv/bin/pytest -q && git log --oneline", timeout=TIMEOUT)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert " passed" in tested.stdout and "Generate the project" in tested.stdout

    # The second command with one tier as its argument: the whole suite is this test's caller.
    ran = run_in(root, f"cd {CLONE} && {develop} -- tests/test_hooks.py -q", timeout=TIMEOUT)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert re.search(r"\d+ passed", ran.stdout), ran.stdout[-3000:]
