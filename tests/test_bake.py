"""Bake every combination: supported ones render clean files, refused ones leave nothing."""

import configparser
import re
import subprocess
import sys
import tomllib

import pytest
from combinations import ROOTLESS_COMBINATIONS, stack_id, tls_sample
from combinations import SUPPORTED_COMBINATIONS as EVERY_SUPPORTED
from combinations import UNSUPPORTED_COMBINATIONS as EVERY_UNSUPPORTED
from cookiecutter.exceptions import FailedHookException
from helpers import TEMPLATE, bake, default_answers, load_hook, read_env_file, render_problems, require_tool
from jinja2 import Environment, nodes

post = load_hook("post_gen_project")
# TLS multiplies the stacks by three: every stack bakes with its default TLS answer, the others with SQLite.
SUPPORTED_COMBINATIONS = tls_sample(EVERY_SUPPORTED)
UNSUPPORTED_COMBINATIONS = tls_sample(EVERY_UNSUPPORTED)


def nothing_baked(tmp_path):
    """Only the empty output folder that cookies made for the refused bake is left."""
    left = sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*"))
    return left == ["cookies", "cookies/bake00"]


def text_files(project):
    for path in sorted(project.rglob("*")):
        if path.is_file() and not {".venv", ".git", "__pycache__"} & set(path.parts):
            yield path, path.read_text(encoding="utf-8")


def ruff(project, *command):
    """ruff on the baked project with the project's own settings: `check` by default, or e.g. `format --check`."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", *(command or ["check"]), "--no-cache", "--quiet", str(project)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("answers", SUPPORTED_COMBINATIONS + ROOTLESS_COMBINATIONS, ids=stack_id)
def test_supported_combination_bakes_clean(cookies, answers):
    """Every stack renders, keeps only its own deploy folders, and leaves no Jinja behind."""
    project = bake(cookies, **answers)
    unused = post.unused_paths(default_answers(**answers))
    for folder in ("gunicorn", "uwsgi", "nginx", "apache", "systemd", "supervisord", "tmpfiles", "backup"):
        assert (project / "deploy" / folder).exists() == (f"deploy/{folder}" not in unused), folder
    for path, text in text_files(project):
        assert render_problems(path, text) == [], path.relative_to(project)
    result = ruff(project)
    assert result.returncode == 0, result.stdout + result.stderr
    result = ruff(project, "format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("answers", SUPPORTED_COMBINATIONS[::7], ids=stack_id)
def test_config_files_parse(cookies, answers):
    """pyproject.toml is TOML; ini-style deploy files parse as ini."""
    project = bake(cookies, **answers)
    tomllib.loads((project / "pyproject.toml").read_text())
    for pattern in ("deploy/uwsgi/*.ini", "deploy/supervisord/*.conf", "deploy/systemd/*.service"):
        for path in project.glob(pattern):
            parser = configparser.ConfigParser(interpolation=None, strict=False)
            parser.read_string(path.read_text())
            assert parser.sections(), path


@pytest.mark.parametrize("answers", UNSUPPORTED_COMBINATIONS, ids=stack_id)
def test_unsupported_combination_is_refused_and_leaves_nothing(cookies, tmp_path, capfd, answers):
    with pytest.raises(FailedHookException):
        bake(cookies, **answers)
    assert nothing_baked(tmp_path)
    err = capfd.readouterr().err
    assert "cannot generate this project" in err
    # The rule broken names the choices that work.
    assert "wsgi_server=gunicorn or uwsgi" in err or "choose tls=none, or web_server=nginx or apache" in err


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("project_slug", "import"),
        ("domain_name", "exa mple.com"),
        ("url_prefix", "no-slash"),
        ("http_port", "99999"),
        ("install_dir", "/tmp/app"),
        ("project_name", "a\tb"),
    ],
)
def test_bad_value_is_refused_and_leaves_nothing(cookies, tmp_path, capfd, key, value):
    with pytest.raises(FailedHookException):
        bake(cookies, **{key: value})
    assert nothing_baked(tmp_path)
    assert f"{key}=" in capfd.readouterr().err


ROOTLESS = {
    "rootless": True,
    "wsgi_server": "uwsgi",
    "web_server": "none",
    "process_manager": "supervisord",
    "install_dir": "/home/deploy/shop",
    "url_prefix": "/shop",
}


@pytest.mark.parametrize("answers", [*SUPPORTED_COMBINATIONS[::4], ROOTLESS], ids=stack_id)
def test_readme_shell_steps_pass_shellcheck(cookies, tmp_path, answers):
    """The deploy steps a user pastes from the README are sound shell (quoting, heredocs, variables)."""
    shellcheck = require_tool("shellcheck", "checks the README's shell steps")
    project = bake(cookies, **answers)
    blocks = re.findall(r"```sh\n(.*?)```", (project / "README.md").read_text(), re.DOTALL)
    assert blocks
    script = tmp_path / "steps.sh"
    script.write_text("#!/bin/bash\n" + "\n".join(blocks))
    # SC2164: a `cd` typed at a prompt needs no `|| exit`; SC1091: the sourced env file exists on the server only.
    result = subprocess.run(
        [shellcheck, "--exclude=SC2164,SC1091", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def if_depth(node, depth=0):
    """How deep {% if %} blocks nest below node; an elif is the same level as its if."""
    elifs = {id(branch) for branch in getattr(node, "elif_", ())}
    deepest = depth
    for child in node.iter_child_nodes():
        inner = depth + 1 if isinstance(child, nodes.If) and id(child) not in elifs else depth
        deepest = max(deepest, if_depth(child, inner))
    return deepest


def test_readme_sections_nest_no_if():
    """Each README include reads as Markdown: no {% if %} inside another (a choice includes its own file instead)."""
    sources = [
        TEMPLATE / "{{cookiecutter.project_slug}}" / "README.md",
        *(TEMPLATE / "templates" / "readme").rglob("*.md"),
    ]
    parse = Environment(trim_blocks=True, lstrip_blocks=True).parse
    depths = {path.relative_to(TEMPLATE).as_posix(): if_depth(parse(path.read_text())) for path in sources}
    assert len(depths) > 1
    assert {name: depth for name, depth in depths.items() if depth > 1} == {}


TRICKY_NAMES = [
    'Bob\'s "quoted" app',
    "Back\\slash \\ app\\",
    "Braces {x} {} }{ app",
    "Café Déjà Vu — 日本語",
    "$(touch /tmp/flask-stack-pwned) `touch /tmp/flask-stack-pwned`",
    "__import__('os').system('touch /tmp/flask-stack-pwned')",
    "'''\"\"\" ; DROP TABLE note; --",
    "100% %(here)s %s $HOME ${HOME}",
]


@pytest.mark.parametrize("name", TRICKY_NAMES, ids=range(len(TRICKY_NAMES)))
@pytest.mark.parametrize(
    "stack",
    [
        {"wsgi_server": "uwsgi", "process_manager": "supervisord", "database": "mysql"},
        {"wsgi_server": "mod_wsgi", "web_server": "apache", "database": "postgresql"},
    ],
    ids=stack_id,
)
def test_tricky_text_renders_valid_files_with_the_value_intact(cookies, tmp_path, name, stack):
    """A name or description with quotes, backslashes, braces, shell or Python code stays
    data: the project is valid, the value is unchanged, and nothing in it ran."""
    marker = tmp_path.parent / "flask-stack-pwned"
    project = bake(cookies, project_name=name, project_slug="tricky", description=name, author_name=name, **stack)
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert metadata["description"] == name
    assert metadata["authors"][0]["name"] == name
    assert name in (project / "README.md").read_text()
    assert ruff(project).returncode == 0, ruff(project).stdout
    for path in project.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    assert not marker.exists()
    assert not (tmp_path / "flask-stack-pwned").exists()
    assert not (project.parent / "flask-stack-pwned").exists()


def test_slug_is_derived_from_a_non_ascii_name(cookies):
    project = bake(cookies, project_name="Café Déjà Vu")
    assert project.name == "cafe_deja_vu"
    assert (project / "cafe_deja_vu" / "__init__.py").exists()


def test_each_bake_gets_its_own_secrets(cookies):
    first = bake(cookies, database="postgresql")
    second = bake(cookies, database="postgresql")
    first_env, second_env = read_env_file(first / ".env"), read_env_file(second / ".env")
    assert first_env["FLASK_SECRET_KEY"] != second_env["FLASK_SECRET_KEY"]
    assert first_env["DB_PASSWORD"] != second_env["DB_PASSWORD"]
    assert (first / ".env").stat().st_mode & 0o777 == 0o600
    assert ".env" in (first / ".gitignore").read_text().split()


def test_no_secret_in_the_template():
    """Nothing in the template looks like a key or a password; .env is never shipped."""
    # A generated secret is long and has digits; a documented placeholder has none.
    secret_like = re.compile(r"(SECRET_KEY|PASSWORD)\s*=\s*['\"]?(?=[A-Za-z_-]*\d)[A-Za-z0-9+/_-]{12,}")
    # Not a secret: the locks' package hashes and the commits the CI workflow pins its actions to.
    hex_run = re.compile(r"(?<!sha256:)(?<!@)\b[0-9a-f]{32,}\b")
    listing = subprocess.run(["git", "ls-files"], cwd=TEMPLATE, capture_output=True, text=True, check=True)
    tracked = listing.stdout.split()
    for relative in tracked:
        path = TEMPLATE / relative
        if not path.is_file():
            continue
        assert path.name != ".env", relative
        text = path.read_text(encoding="utf-8", errors="replace")
        assert not secret_like.search(text), relative
        assert not hex_run.search(text), relative
