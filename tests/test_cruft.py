"""cruft against a git repository of this template: create, check, update, link.

The template's work tree (tracked and untracked files, without .git and
caches) is committed as "v1" into a temporary repository that cruft clones by
a file:// URL, as it clones a user's gh: URL. A later commit there plays the
template's next release. Every cruft and cookiecutter run has a PATH shim in
front that records any call of an installer (uv, pip, virtualenv) and fails it.
"""

import difflib
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cruft
import pytest
from combinations import ROOTLESS_COMBINATIONS, SUPPORTED_COMBINATIONS, stack_id
from helpers import TEMPLATE, require_tool

CRUFT = [sys.executable, "-m", "cruft"]
COOKIECUTTER = [sys.executable, "-m", "cookiecutter"]
PROJECT_ROOT = "{{cookiecutter.project_slug}}"
SLUG = "flask_stack_app"  # the slug of the default project name
# Work-tree clutter that is never part of a template release.
NOT_TEMPLATE = {".git", ".tox", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache", "__pycache__"}
# What belongs to the user, not the template: cruft must leave it as it is.
USER_STATE = {".env", ".venv", "instance"}
INSTALLERS = ("uv", "uvx", "pip", "pip3", "virtualenv")
CONFLICT_MARKER = b"<<<<<<<"  # at the start of a line, as git writes it

USER_TOP_LINE = "# Local change at the top: the user's, kept across template updates.\n"
USER_END_LINE = "# Local change at the end: the user's, kept across template updates.\n"
TEMPLATE_CHANGE = " (reworded in the template's next release)"
USER_CHANGE = " (reworded by the user)"

ANSWER_CHANGES = [
    # (answer, old value, new value, folders only the old value has, folders only the new one has)
    ("database", "sqlite", "postgresql", (), ()),
    ("wsgi_server", "gunicorn", "uwsgi", ("deploy/gunicorn",), ("deploy/uwsgi",)),
    ("web_server", "nginx", "apache", ("deploy/nginx",), ("deploy/apache",)),
    ("process_manager", "systemd", "supervisord", ("deploy/systemd",), ("deploy/supervisord",)),
]


# --- running commands -------------------------------------------------------


def run(args, cwd, env, check=True):
    """Run a command, output captured; on failure (if check) fail with its output."""
    args = [str(arg) for arg in args]
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    result.output = result.stdout + result.stderr
    if check and result.returncode != 0:
        pytest.fail(f"`{shlex.join(args)}` exited {result.returncode}:\n{result.output}")
    return result


def git(*args, cwd, env):
    return run(["git", *args], cwd, env).stdout.strip()


def commit_all(path, message, env):
    """Commit everything git does not ignore; return the commit id."""
    git("add", "-A", cwd=path, env=env)
    git("commit", "--quiet", "--allow-empty", "-m", message, cwd=path, env=env)
    return git("rev-parse", "HEAD", cwd=path, env=env)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """An environment for git, cruft and cookiecutter: own HOME, git identity, installer shim."""
    home = tmp_path_factory.mktemp("home")
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n")
    shim = tmp_path_factory.mktemp("installer-shim")
    log = shim / "calls.log"
    for name in INSTALLERS:
        script = shim / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\nexit 1\n')
        script.chmod(0o755)
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": os.pathsep.join([str(shim), str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Template Tester",
        "GIT_AUTHOR_EMAIL": "tester@example.com",
        "GIT_COMMITTER_NAME": "Template Tester",
        "GIT_COMMITTER_EMAIL": "tester@example.com",
    }
    env.pop("VIRTUAL_ENV", None)
    return SimpleNamespace(env=env, home=home, installer_calls=lambda: log.read_text() if log.exists() else "")


def no_network(env):
    """env in which HTTP(S) through any proxy-honouring client fails and installers stay offline."""
    dead = "http://127.0.0.1:9"
    return {
        **env,
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "ALL_PROXY": dead,
        "http_proxy": dead,
        "https_proxy": dead,
        "all_proxy": dead,
        "NO_PROXY": "",
        "no_proxy": "",
        "PIP_NO_INDEX": "1",
        "UV_OFFLINE": "1",
    }


# --- the template repository ------------------------------------------------


class TemplateRepo:
    """A git repository holding this template, as users clone it."""

    def __init__(self, path, env):
        self.path = path
        self.env = env
        self.url = f"file://{path}"

    def source(self, relative):
        """The template file that renders to relative (a path in a project with the default slug)."""
        return self.path / PROJECT_ROOT / relative.replace(SLUG, PROJECT_ROOT)

    def commit(self, message):
        return commit_all(self.path, message, self.env)


def copy_template(destination):
    """Copy the work tree of this template without version control and caches."""

    def ignore(_directory, names):
        return {name for name in names if name in NOT_TEMPLATE or name.endswith(".pyc")}

    shutil.copytree(TEMPLATE, destination, symlinks=True, ignore=ignore)


def make_template_repo(path, env):
    """This template committed as v1 in a fresh repository at path."""
    copy_template(path)
    git("init", "--quiet", cwd=path, env=env)
    repo = TemplateRepo(path, env)
    repo.v1 = repo.commit("v1")
    git("gc", "--quiet", cwd=path, env=env)  # packed: every clone cruft makes is smaller and quicker to remove
    return repo


@pytest.fixture
def template_repo(tmp_path, sandbox):
    """A repository of its own for one test, free to take new commits."""
    return make_template_repo(tmp_path / "template", sandbox.env)


@pytest.fixture(scope="module")
def released_template(tmp_path_factory, sandbox):
    """One repository the module's read-only tests share."""
    return make_template_repo(tmp_path_factory.mktemp("released") / "template", sandbox.env)


# --- projects ---------------------------------------------------------------


def cruft_create(repo, output_dir, env, **answers):
    """cruft create the template's HEAD with answers; return the project path and cruft's output."""
    output_dir.mkdir(parents=True, exist_ok=True)
    result = run(
        [*CRUFT, "create", repo.url, "--no-input", "--output-dir", output_dir, "--extra-context", json.dumps(answers)],
        output_dir,
        env,
    )
    return output_dir / SLUG, result.output


def cookiecutter_bake(template_dir, output_dir, env, answers, *options):
    """Plain cookiecutter, as a user without cruft runs it."""
    words = [f"{key}={json.dumps(value) if isinstance(value, bool) else value}" for key, value in answers.items()]
    output_dir.mkdir(parents=True, exist_ok=True)
    run([*COOKIECUTTER, "--no-input", *options, "--output-dir", output_dir, template_dir, *words], output_dir, env)
    return output_dir / SLUG


def recorded_answers(project):
    """The answers in .cruft.json, as cruft passes them to a re-render."""
    state = json.loads((project / ".cruft.json").read_text())
    return {key: value for key, value in state["context"]["cookiecutter"].items() if not key.startswith("_")}


def put_under_git(project, env):
    """What a user does first: git init and commit the generated project."""
    git("init", "--quiet", cwd=project, env=env)
    commit = commit_all(project, "Generated by flask-stack", env)
    tracked_secrets = git("ls-files", ".env", cwd=project, env=env)
    assert not tracked_secrets, "the generated .gitignore must keep .env (secrets) out of git"
    return commit


def add_user_state(project, env):
    """A virtualenv and an instance database, as a running project has; git must ignore both."""
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n# marker: the user's venv\n")
    (project / "instance").mkdir()
    (project / "instance" / f"{SLUG}.sqlite3").write_bytes(b"SQLite format 3\x00" + os.urandom(64))
    unclean = git("status", "--porcelain", "--untracked-files=all", cwd=project, env=env)
    assert not unclean, (
        f"the generated .gitignore must ignore .env, .venv/ and instance/ (else cruft refuses to update):\n{unclean}"
    )


def walk(root, exclude):
    """{relative path: (bytes, mode)} of every file below root, top-level names in exclude left out."""
    files = {}
    for directory, subdirs, names in os.walk(root):
        here = Path(directory)
        if here == root:
            subdirs[:] = [name for name in subdirs if name not in exclude]
            names = [name for name in names if name not in exclude]
        for name in names:
            path = here / name
            files[path.relative_to(root).as_posix()] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return files


def user_state(project):
    """The user's files cruft must never touch, with their bytes and modes."""
    return {name: data for name, data in walk(project, set()).items() if name.split("/")[0] in USER_STATE}


def assert_same_tree(actual, expected):
    """Same files, same bytes; on a difference show which files and the first diff."""
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    changed = sorted(name for name in expected.keys() & actual.keys() if actual[name][0] != expected[name][0])
    if missing or extra or changed:
        detail = ""
        if changed:
            name = changed[0]
            detail = "".join(
                difflib.unified_diff(
                    expected[name][0].decode(errors="replace").splitlines(True),
                    actual[name][0].decode(errors="replace").splitlines(True),
                    f"fresh bake/{name}",
                    f"updated/{name}",
                )
            )
        pytest.fail(f"missing: {missing}\nextra: {extra}\nchanged: {changed}\n{detail}")


def leftovers(project):
    """.rej files and files with conflict markers in the project."""
    found = []
    for name, (data, _mode) in walk(project, {".git", ".venv", "instance"}).items():
        if name.endswith(".rej") or any(line.startswith(CONFLICT_MARKER) for line in data.splitlines()):
            found.append(name)
    return sorted(found)


def first_file(project, folder):
    """The first file of a deploy folder, relative to the project."""
    files = sorted((project / folder).glob("*"))
    assert files, f"{folder} is empty"
    return files[0].relative_to(project).as_posix()


def app_server_config(project):
    """The gunicorn config of a default project, relative to it."""
    return first_file(project, "deploy/gunicorn")


def user_module(project):
    """A file of the project the template change leaves alone: the package's main.py."""
    assert (project / SLUG / "main.py").is_file()
    return f"{SLUG}/main.py"


def changeable_line(repo, project, relative):
    """A plain comment line of the template file, rendered verbatim once, far from the top."""
    rendered = (project / relative).read_text().splitlines()
    for line in reversed(repo.source(relative).read_text().splitlines()):
        if (
            line.startswith(("#", ";"))
            and not {"{", "%"} & set(line)
            and rendered.count(line) == 1
            and rendered.index(line) >= 6
        ):
            return line
    pytest.fail(f"{relative} has no plain comment line below its top to change")


def replace_line(path, old, new):
    text = path.read_text()
    assert text.count(old + "\n") == 1, f"{old!r} is not a single line of {path}"
    path.write_text(text.replace(old + "\n", new + "\n"))


def prepend(path, line):
    path.write_text(line + path.read_text())


def append(path, line):
    text = path.read_text()
    path.write_text(text + ("" if text.endswith("\n") or not text else "\n") + line)


def template_release(repo, relative, line):
    """The template's next release rewords one comment of a deploy file."""
    replace_line(repo.source(relative), line, line + TEMPLATE_CHANGE)
    return repo.commit("v2: reword a comment in " + relative)


# --- create, for every combination ------------------------------------------


@pytest.mark.parametrize(
    "answers",
    [pytest.param(c, id=stack_id(c)) for c in SUPPORTED_COMBINATIONS]
    + [pytest.param(c, id=stack_id(c)) for c in ROOTLESS_COMBINATIONS],
)
def test_create_records_template_commit_and_answers(answers, released_template, sandbox, tmp_path, monkeypatch, capfd):
    """cruft create works for every stack, records template, commit and every answer,
    and makes no venv even though create_venv defaults to true."""
    for key in ("HOME", "PATH", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM"):
        monkeypatch.setenv(key, sandbox.env[key])
    project = cruft.create(released_template.url, output_dir=tmp_path, extra_context=answers, no_input=True)

    state = json.loads((project / ".cruft.json").read_text())
    assert state["template"] == str(released_template.path)
    assert state["commit"] == released_template.v1
    recorded = state["context"]["cookiecutter"]
    prompts = [key for key in json.loads((TEMPLATE / "cookiecutter.json").read_text()) if not key.startswith("_")]
    assert [key for key in prompts if key not in recorded] == []
    assert {key: recorded[key] for key in answers} == answers
    assert recorded["create_venv"] is True
    assert "Rendered by cruft" in capfd.readouterr().out
    assert not (project / ".venv").exists()
    assert sandbox.installer_calls() == ""


# --- an update that merges cleanly ------------------------------------------


@pytest.fixture(scope="module")
def clean_update(tmp_path_factory, sandbox):
    """A user's project taken through one template release that does not touch their edits."""
    env = sandbox.env
    done = SimpleNamespace()  # what each step made, for the tests to read
    done.repo = repo = make_template_repo(tmp_path_factory.mktemp("clean") / "template", env)
    project, done.create_output = cruft_create(repo, repo.path.parent / "projects", env, create_venv=False)
    done.project = project
    done.state_at_create = json.loads((project / ".cruft.json").read_text())
    put_under_git(project, env)
    add_user_state(project, env)

    done.deploy_file = deploy_file = app_server_config(project)
    done.other_file = user_module(project)
    done.line = changeable_line(repo, project, deploy_file)
    prepend(project / deploy_file, USER_TOP_LINE)
    append(project / done.other_file, USER_END_LINE)
    commit_all(project, "User edits", env)
    done.state_before = user_state(project)

    done.v2 = template_release(repo, deploy_file, done.line)
    done.check_before = run([*CRUFT, "check"], project, env, check=False)
    done.update = run([*CRUFT, "update", "-y"], project, no_network(env))
    done.check_after = run([*CRUFT, "check"], project, env, check=False)
    return done


def test_create_records_file_url_commit_and_answers(clean_update):
    """.cruft.json of `cruft create file://...` names the template, its commit and the answers."""
    state = clean_update.state_at_create
    assert state["template"] == str(clean_update.repo.path)
    assert state["commit"] == clean_update.repo.v1
    assert state["context"]["cookiecutter"]["create_venv"] is False
    assert "Rendered by cruft" not in clean_update.create_output  # create_venv=false: nothing to skip


def test_check_fails_before_and_passes_after_update(clean_update):
    """`cruft check` exits 1 once the template has a newer commit and 0 after the update recorded it."""
    assert clean_update.check_before.returncode == 1, clean_update.check_before.output
    assert "out of date" in clean_update.check_before.output
    assert clean_update.check_after.returncode == 0, clean_update.check_after.output
    assert json.loads((clean_update.project / ".cruft.json").read_text())["commit"] == clean_update.v2


def test_update_applies_template_change_and_keeps_user_edits(clean_update):
    """The reworded template line arrives; the user's lines above it and in another file stay."""
    deploy = (clean_update.project / clean_update.deploy_file).read_text()
    assert deploy.startswith(USER_TOP_LINE)
    assert clean_update.line + TEMPLATE_CHANGE + "\n" in deploy
    assert (clean_update.project / clean_update.other_file).read_text().endswith(USER_END_LINE)
    assert leftovers(clean_update.project) == []
    assert "conflict" not in clean_update.update.output.lower()
    assert "Good work" in clean_update.update.output


def test_update_keeps_secrets_venv_and_data(clean_update):
    """.env (secrets), .venv and instance/ are byte for byte and mode for mode as before."""
    assert sorted(clean_update.state_before) == [".env", ".venv/pyvenv.cfg", f"instance/{SLUG}.sqlite3"], (
        "fixture lost the user's state"
    )
    assert user_state(clean_update.project) == clean_update.state_before


def test_update_equals_fresh_bake_plus_user_edits(clean_update, sandbox, tmp_path):
    """The updated project is a fresh bake of the new release with the user's edits,
    apart from the secrets (.env), the user's state and .cruft.json."""
    fresh = cookiecutter_bake(clean_update.repo.path, tmp_path, sandbox.env, recorded_answers(clean_update.project))
    prepend(fresh / clean_update.deploy_file, USER_TOP_LINE)
    append(fresh / clean_update.other_file, USER_END_LINE)
    ignore = {".git", ".cruft.json", *USER_STATE}
    assert_same_tree(walk(clean_update.project, ignore), walk(fresh, ignore))


def test_project_tests_pass_after_update(clean_update, tmp_path):
    """The updated project installs and its own test suite passes."""
    project = clean_update.project
    tools_path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    uv = shutil.which("uv", path=tools_path) or require_tool("uv", "creates the project's venv")
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    venv = tmp_path / "venv"  # outside the project: its .venv is the user's marker
    run([uv, "venv", "--quiet", "--python", sys.executable, venv], project, env)
    run([uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python", "-e", ".[dev]"], project, env)
    result = run([venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, env, check=False)
    assert result.returncode == 0, result.output


# --- an update that conflicts -----------------------------------------------


@pytest.mark.parametrize(
    "edited_before_first_commit",
    [
        pytest.param(False, id="generated-then-edited:conflict-markers"),
        pytest.param(True, id="edited-before-first-commit:rej-file"),
    ],
)
def test_conflicting_edit_is_shown_and_nothing_else_lost(edited_before_first_commit, template_repo, sandbox, tmp_path):
    """User and template reword the same line: cruft leaves the conflict for the user to
    resolve and says so (conflict markers when git has the file as generated, else a .rej
    file); .env and the user's other edits are kept."""
    env = sandbox.env
    project, _ = cruft_create(template_repo, tmp_path / "projects", env, create_venv=False)
    if not edited_before_first_commit:
        put_under_git(project, env)
    env_file = (project / ".env").read_bytes()
    deploy_file, other_file = app_server_config(project), user_module(project)
    line = changeable_line(template_repo, project, deploy_file)
    replace_line(project / deploy_file, line, line + USER_CHANGE)
    append(project / other_file, USER_END_LINE)
    if edited_before_first_commit:
        put_under_git(project, env)
    else:
        commit_all(project, "User edits", env)
    template_release(template_repo, deploy_file, line)

    update = run([*CRUFT, "update", "-y"], project, env)

    deploy = (project / deploy_file).read_text()
    if edited_before_first_commit:
        assert leftovers(project) == [deploy_file + ".rej"]
        assert "*.rej files" in update.output, update.output
        assert line + TEMPLATE_CHANGE in (project / (deploy_file + ".rej")).read_text()
    else:
        assert leftovers(project) == [deploy_file]
        assert f"Applied patch to '{deploy_file}' with conflicts." in update.output, update.output
        assert line + TEMPLATE_CHANGE + "\n" in deploy
    assert line + USER_CHANGE + "\n" in deploy  # the user's version is still there to choose
    assert (project / other_file).read_text().endswith(USER_END_LINE)
    assert (project / ".env").read_bytes() == env_file


# --- changing an answer -----------------------------------------------------


@pytest.mark.parametrize(
    "answer, old, new, only_old, only_new",
    [pytest.param(*change, id=f"{change[0]}:{change[1]}->{change[2]}") for change in ANSWER_CHANGES],
)
def test_changed_answer_gives_the_files_of_the_new_choice(
    answer, old, new, only_old, only_new, template_repo, sandbox, tmp_path
):
    """cruft update --variables-to-update switches the stack: the project becomes a fresh
    bake of the new answers, the old choice's files gone, .env (secrets) untouched."""
    env = sandbox.env
    project, _ = cruft_create(template_repo, tmp_path / "projects", env, create_venv=False, **{answer: old})
    put_under_git(project, env)
    before = user_state(project)
    for folder in only_old:
        assert (project / folder).is_dir()

    run([*CRUFT, "update", "-y", "--variables-to-update", json.dumps({answer: new})], project, no_network(env))

    assert recorded_answers(project)[answer] == new
    for folder in only_old:
        assert not (project / folder).exists(), f"{folder} is left over from {answer}={old}"
    for folder in only_new:
        assert any((project / folder).glob("*")), f"{folder} of {answer}={new} is missing"
    assert leftovers(project) == []
    assert user_state(project) == before
    fresh = cookiecutter_bake(template_repo.path, tmp_path / "fresh", env, recorded_answers(project))
    ignore = {".git", ".cruft.json", *USER_STATE}
    assert_same_tree(walk(project, ignore), walk(fresh, ignore))
    assert sandbox.installer_calls() == ""


def test_changed_answer_leaves_an_edited_file_of_the_old_choice_and_names_it(template_repo, sandbox, tmp_path):
    """gunicorn -> uwsgi after the user edited the gunicorn config: git cannot delete a
    changed file, so cruft leaves it in place (no .rej) and names it in its output; the
    README tells the user to move the edit over and `git rm` the old folder."""
    env = sandbox.env
    project, _ = cruft_create(template_repo, tmp_path / "projects", env, create_venv=False)
    put_under_git(project, env)
    deploy_file = app_server_config(project)
    prepend(project / deploy_file, USER_TOP_LINE)
    commit_all(project, "User edits", env)

    update = run([*CRUFT, "update", "-y", "--variables-to-update", json.dumps({"wsgi_server": "uwsgi"})], project, env)

    assert (project / deploy_file).read_text().startswith(USER_TOP_LINE)
    assert f"{deploy_file}: patch does not apply" in update.output, update.output
    assert any((project / "deploy" / "uwsgi").glob("*"))
    assert leftovers(project) == []


# --- speed and side effects -------------------------------------------------


def test_update_renders_no_venv_and_runs_no_installer(template_repo, sandbox, tmp_path):
    """With create_venv=true recorded, the renders of an update create no .venv, call no
    installer and need no network (bench/cruft_update.py measures how long it takes)."""
    env = sandbox.env
    project, create_output = cruft_create(template_repo, tmp_path / "projects", env)
    assert json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]["create_venv"] is True
    assert "Rendered by cruft" in create_output
    put_under_git(project, env)
    deploy_file = app_server_config(project)
    template_release(template_repo, deploy_file, changeable_line(template_repo, project, deploy_file))

    update = run([*CRUFT, "update", "-y"], project, no_network(env))

    # One line from the hook in each of the two renders (old and new release).
    assert update.output.count("Rendered by cruft") == 2, update.output
    assert sandbox.installer_calls() == ""
    assert not (project / ".venv").exists()
    assert TEMPLATE_CHANGE in (project / deploy_file).read_text()


# --- hooks and linking ------------------------------------------------------


def test_hooks_are_idempotent(template_repo, sandbox, tmp_path):
    """Rendering over an existing project changes nothing: .env keeps its secrets,
    unused deploy folders stay removed."""
    answers = {"create_venv": False, "database": "postgresql"}
    project = cookiecutter_bake(template_repo.path, tmp_path, sandbox.env, answers)
    first = walk(project, set())
    cookiecutter_bake(template_repo.path, tmp_path, sandbox.env, answers, "--overwrite-if-exists")
    assert_same_tree(walk(project, set()), first)


def test_plain_cookiecutter_project_can_be_linked(template_repo, sandbox, tmp_path):
    """A project made with plain cookiecutter is linked with `cruft link`, then
    `cruft check` passes and the next release updates it."""
    env = sandbox.env
    answers = {"create_venv": False, "database": "postgresql", "wsgi_server": "uwsgi"}
    project = cookiecutter_bake(template_repo.path, tmp_path, env, answers)
    put_under_git(project, env)
    env_file = (project / ".env").read_bytes()

    run([*CRUFT, "link", template_repo.url, "--no-input", "--extra-context", json.dumps(answers)], project, env)
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == template_repo.v1
    assert {key: recorded_answers(project)[key] for key in answers} == answers
    assert run([*CRUFT, "check"], project, env, check=False).returncode == 0
    commit_all(project, "Link to flask-stack with cruft", env)

    deploy_file = first_file(project, "deploy/uwsgi")
    template_release(template_repo, deploy_file, changeable_line(template_repo, project, deploy_file))
    run([*CRUFT, "update", "-y"], project, env)
    assert TEMPLATE_CHANGE in (project / deploy_file).read_text()
    assert leftovers(project) == []
    assert (project / ".env").read_bytes() == env_file
