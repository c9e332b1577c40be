"""Unit tests of the hook functions, called directly."""

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import AXES, STACK, SUPPORTED_COMBINATIONS, TEMPLATE, UNSUPPORTED_COMBINATIONS, stack_id
from cookiecutter.exceptions import UndefinedVariableInTemplate
from cookiecutter.main import cookiecutter
from helpers import default_answers, load_hook, parse_env

pre = load_hook("pre_gen_project")
post = load_hook("post_gen_project")


def keys_of(problems):
    return [key for key, _ in problems]


def test_defaults_are_valid():
    """The answers a user gets by pressing enter everywhere generate a project."""
    assert pre.validate(default_answers()) == []


@pytest.mark.parametrize("answers", SUPPORTED_COMBINATIONS, ids=stack_id)
def test_supported_combination_passes(answers):
    assert pre.validate(default_answers(**answers)) == []


@pytest.mark.parametrize("answers", UNSUPPORTED_COMBINATIONS, ids=stack_id)
def test_unsupported_combination_names_working_choices(answers):
    problems = pre.validate(default_answers(**answers))
    assert problems
    text = " ".join(message for _, message in problems)
    if answers["wsgi_server"] == "mod_wsgi" and (answers["web_server"], answers["process_manager"]) != (
        "apache",
        "systemd",
    ):
        assert "web_server=apache" in text or "process_manager=systemd" in text
        assert "wsgi_server=gunicorn or uwsgi" in text
    if answers["web_server"] == "none" and answers["tls"] != "none":
        assert "choose tls=none, or web_server=nginx or apache" in text


def test_letsencrypt_needs_port_80():
    """The ACME HTTP-01 challenge only comes to port 80; a certificate of your own works on any port."""
    problems = pre.validate(default_answers(http_port="8080"))
    assert keys_of(problems) == ["http_port"]
    assert "tls=own" in problems[0][1]
    assert pre.validate(default_answers(http_port="8080", tls="own")) == []


def test_tls_answers_are_checked_for_the_chosen_tls():
    """The ACME account address and directory for letsencrypt, the files for own; ignored otherwise."""
    bad = {"acme_email": "nobody", "acme_server": "http://acme.example/dir", "tls_certificate": "cert.pem"}
    assert keys_of(pre.validate(default_answers(**bad))) == ["acme_email", "acme_server"]
    assert keys_of(pre.validate(default_answers(tls="own", **bad))) == ["tls_certificate"]
    assert pre.validate(default_answers(tls="none", **bad)) == []


def test_https_derives_the_certificate_paths():
    """certbot's live directory for letsencrypt, your paths for own, none without TLS."""
    answers = default_answers(domain_name="shop.example.org")
    assert answers["__https"] == "yes"
    assert answers["__tls_certificate"] == "/etc/letsencrypt/live/shop.example.org/fullchain.pem"
    assert answers["__tls_key"] == "/etc/letsencrypt/live/shop.example.org/privkey.pem"
    answers = default_answers(tls="own", tls_certificate="/etc/ssl/c.pem", tls_key="/etc/ssl/k.pem")
    assert (answers["__tls_certificate"], answers["__tls_key"]) == ("/etc/ssl/c.pem", "/etc/ssl/k.pem")
    answers = default_answers(tls="none")
    assert (answers["__https"], answers["__tls_certificate"]) == ("", "")


def test_plain_http_drops_the_http_site():
    """Only an HTTPS site has the port-80 redirect file; a stack without a front server has neither."""
    assert "deploy/nginx/http.conf" not in post.unused_paths(default_answers())
    assert "deploy/nginx/http.conf" in post.unused_paths(default_answers(tls="none"))
    assert "deploy/apache/http.conf" not in post.unused_paths(default_answers(web_server="apache", tls="own"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("project_slug", "My-App"),
        ("project_slug", "1app"),
        ("project_slug", "class"),
        ("project_slug", "email"),
        ("project_slug", "flask"),
        ("project_slug", "postgres"),
        ("project_slug", "user"),
        ("project_slug", "pg_app"),
        ("project_slug", "a" * 33),
        ("project_slug", "café"),
        ("project_name", "   "),
        ("project_name", "two\nlines"),
        ("author_email", "not-an-email"),
        ("domain_name", "Example.com"),
        ("domain_name", "exa mple.com"),
        ("domain_name", "-bad.example.com"),
        ("domain_name", "bücher.example"),
        ("domain_name", "example.com."),
        ("domain_name", "example.com;evil"),
        ("url_prefix", "myapp"),
        ("url_prefix", "/my app"),
        ("url_prefix", "//x"),
        ("url_prefix", "/../etc"),
        ("url_prefix", "/a/{x}"),
        ("http_port", "0"),
        ("http_port", "65536"),
        ("http_port", "80x"),
        ("http_port", "８０"),
        ("install_dir", "opt/app"),
        ("install_dir", "/opt/my app"),
        ("install_dir", "/opt/../etc"),
        ("install_dir", "/tmp/app"),
        ("install_dir", "/home/me/app"),
        ("install_dir", "/opt/$(id)"),
        ("install_dir", "/"),
    ],
)
def test_bad_value_is_refused_with_what_is_accepted(key, value):
    problems = pre.validate(default_answers(**{key: value}))
    assert key in keys_of(problems)
    assert any(f"{key}=" in message for _, message in problems)


def test_every_problem_is_reported_at_once():
    answers = default_answers(project_slug="class", http_port="0", domain_name="x y")
    assert keys_of(pre.validate(answers)) == ["project_slug", "domain_name", "http_port"]


def test_privileged_port_refused_without_front_server():
    problems = pre.validate(default_answers(web_server="none", http_port="80"))
    assert keys_of(problems) == ["http_port"]
    assert "e.g. 8000" in problems[0][1]


def test_port_defaults_to_8000_without_front_server():
    assert default_answers(web_server="none")["http_port"] == "8000"
    assert pre.validate(default_answers(web_server="none")) == []


def test_rootless_needs_its_own_stack():
    problems = pre.validate(default_answers(rootless=True))
    assert keys_of(problems) == ["install_dir", "web_server", "process_manager"]
    answers = default_answers(rootless=True, install_dir="/home/me/app")
    assert keys_of(pre.validate(answers)) == ["web_server", "process_manager"]
    answers = default_answers(
        rootless=True, install_dir="/home/me/app", web_server="none", process_manager="supervisord", wsgi_server="uwsgi"
    )
    assert pre.validate(answers) == []


def test_rerun_command_keeps_other_answers_and_quotes_them():
    answers = default_answers(project_name="Bob's $(rm -rf ~) app", project_slug="bobs_app", http_port="0")
    command = pre.rerun_command(answers, {"http_port"})
    words = shlex.split(command)
    assert words[:2] == ["cookiecutter", answers["_template"]]
    assert "project_name=Bob's $(rm -rf ~) app" in words
    assert "project_slug=bobs_app" in words
    assert "create_venv=yes" in words
    assert not any(word.startswith(("http_port=", "_")) for word in words)


def test_report_lists_problems_and_the_command():
    answers = default_answers(http_port="0")
    text = pre.report(answers, pre.validate(answers))
    assert "http_port='0' must be a number" in text
    assert "Nothing was written" in text
    assert "cookiecutter " in text.splitlines()[-1]


KEPT_FOLDERS = [
    (
        {"wsgi_server": "gunicorn", "web_server": "nginx", "process_manager": "systemd"},
        {"deploy/gunicorn", "deploy/nginx", "deploy/systemd", "deploy/backup", "deploy/ansible"},
    ),
    (
        {"wsgi_server": "uwsgi", "web_server": "apache", "process_manager": "supervisord"},
        {"deploy/uwsgi", "deploy/apache", "deploy/supervisord", "deploy/tmpfiles", "deploy/backup", "deploy/ansible"},
    ),
    (
        {"wsgi_server": "uwsgi", "web_server": "none", "process_manager": "supervisord"},
        {"deploy/uwsgi", "deploy/supervisord", "deploy/backup", "deploy/ansible"},
    ),
    (
        {"wsgi_server": "uwsgi", "web_server": "none", "process_manager": "supervisord", "rootless": True},
        {"deploy/uwsgi", "deploy/supervisord"},
    ),
    (
        {"wsgi_server": "mod_wsgi", "web_server": "apache", "process_manager": "systemd"},
        {"deploy/apache", "deploy/backup", "deploy/ansible"},
    ),
]


@pytest.mark.parametrize(("answers", "kept"), KEPT_FOLDERS, ids=[stack_id(answers) for answers, _ in KEPT_FOLDERS])
def test_unused_paths_keep_only_the_stack(answers, kept):
    every = {
        "deploy/gunicorn",
        "deploy/uwsgi",
        "deploy/nginx",
        "deploy/apache",
        "deploy/systemd",
        "deploy/supervisord",
        "deploy/tmpfiles",
        "deploy/backup",
        "deploy/ansible",
    }
    assert set(post.unused_paths(default_answers(**answers))) == every - kept


def test_remove_paths_deletes_files_and_folders(tmp_path):
    (tmp_path / "deploy" / "uwsgi").mkdir(parents=True)
    (tmp_path / "deploy" / "uwsgi" / "app.ini").write_text("[uwsgi]\n")
    (tmp_path / "keep.txt").write_text("x")
    post.remove_paths(tmp_path, ["deploy/uwsgi", "missing"])
    assert not (tmp_path / "deploy" / "uwsgi").exists()
    assert (tmp_path / "keep.txt").exists()


@pytest.mark.parametrize("database", ["postgresql", "mysql"])
def test_env_file_password_matches_database_url(database):
    answers = default_answers(database=database, project_slug="shop")
    env = parse_env(post.env_file_text(answers))
    assert len(env["FLASK_SECRET_KEY"]) == 64
    assert f"://shop:{env['DB_PASSWORD']}@127.0.0.1:" in env["FLASK_SQLALCHEMY_DATABASE_URI"]


def test_env_file_for_sqlite_points_at_the_state_directory():
    env = parse_env(post.env_file_text(default_answers(project_slug="shop")))
    assert env["FLASK_SQLALCHEMY_DATABASE_URI"] == "sqlite:////var/lib/shop/shop.sqlite3"
    assert "DB_PASSWORD" not in env


def test_env_file_secrets_differ_between_calls():
    answers = default_answers(database="postgresql")
    first, second = parse_env(post.env_file_text(answers)), parse_env(post.env_file_text(answers))
    assert first["FLASK_SECRET_KEY"] != second["FLASK_SECRET_KEY"]
    assert first["DB_PASSWORD"] != second["DB_PASSWORD"]


def test_write_env_file_is_private_and_never_overwrites(tmp_path):
    path = tmp_path / ".env"
    post.write_env_file(path, default_answers())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    before = path.read_text()
    post.write_env_file(path, default_answers())
    assert path.read_text() == before


def test_venv_commands_prefer_uv(monkeypatch):
    monkeypatch.setattr(post.shutil, "which", lambda name: "/usr/bin/uv")
    assert post.venv_commands("/usr/bin/python3")[0][:2] == ["uv", "venv"]
    monkeypatch.setattr(post.shutil, "which", lambda name: None)
    commands = post.venv_commands("/usr/bin/python3")
    assert commands[0] == ["/usr/bin/python3", "-m", "venv", ".venv"]
    assert commands[1][-3:] == ["--require-hashes", "-r", "requirements-dev.txt"]
    assert commands[2][-3:] == ["--no-deps", "-e", "."]


def test_failed_venv_keeps_project_and_says_how_to_retry(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(post, "venv_commands", lambda: [["false"], ["true"]])
    assert post.create_venv(tmp_path) is False
    assert tmp_path.exists()
    assert f"cd {tmp_path}" in capsys.readouterr().err


def test_existing_venv_is_kept(tmp_path, monkeypatch):
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").write_text("")
    monkeypatch.setattr(post, "venv_commands", lambda: pytest.fail("must not run"))
    assert post.create_venv(tmp_path) is True


def test_cruft_is_recognised_by_its_commit_answer():
    assert post.rendered_by_cruft({"_commit": "abc"})
    assert not post.rendered_by_cruft(default_answers())


def test_prompt_lists_are_the_table_of_stack_facts():
    """cookiecutter prompts from the lists in cookiecutter.json; the table names the same choices, in order."""
    prompts = json.loads((TEMPLATE / "cookiecutter.json").read_text())
    assert {key: tuple(prompts[key]) for key in STACK["choices"]} == AXES


def test_a_choice_without_its_table_entry_fails_loudly(tmp_path):
    """A front server added to the prompt list but not to the table stops the bake; nothing treats it as
    Apache or as none."""
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=shutil.ignore_patterns(".git", ".tox", "__pycache__"))
    prompts = json.loads((template / "cookiecutter.json").read_text())
    prompts["web_server"].append("caddy")
    (template / "cookiecutter.json").write_text(json.dumps(prompts))
    with pytest.raises(UndefinedVariableInTemplate, match="caddy|has no attribute"):
        cookiecutter(str(template), no_input=True, output_dir=str(tmp_path), extra_context={"web_server": "caddy"})
    assert not (tmp_path / "flask_stack_app").exists()


def test_rerun_command_leaves_out_values_derived_from_a_refused_answer():
    """install_dir=/opt/class came from project_slug=class: the new slug must derive a new one."""
    answers = default_answers(project_slug="class", web_server="none")
    assert answers["install_dir"] == "/opt/class"
    derived = pre.derived_values(answers, pre.template_defaults(answers))
    assert derived["install_dir"] == "/opt/class"
    assert derived["http_port"] == "8000"
    words = shlex.split(pre.rerun_command(answers, {"project_slug"}, derived))
    assert not any(word.startswith(("install_dir=", "http_port=", "project_slug=")) for word in words)
    assert "project_name=Flask Stack App" in words
    assert "web_server=none" in words


def test_rerun_command_keeps_values_the_user_chose():
    answers = default_answers(project_slug="class", install_dir="/srv/notes", http_port="8080", web_server="none")
    derived = pre.derived_values(answers, pre.template_defaults(answers))
    words = shlex.split(pre.rerun_command(answers, {"project_slug"}, derived))
    assert "install_dir=/srv/notes" in words
    assert "http_port=8080" in words


def test_rerun_command_keeps_no_input_only_when_given():
    answers = default_answers(http_port="0")
    assert shlex.split(pre.rerun_command(answers, {"http_port"}, no_input=True))[2] == "--no-input"
    assert "--no-input" not in shlex.split(pre.rerun_command(answers, {"http_port"}))
    text = pre.report(answers, pre.validate(answers), no_input=True)
    assert "adding http_port=<new value>" in text


def test_template_defaults_unreadable_means_nothing_is_derived():
    assert pre.template_defaults({"_template": "gh:org/missing"}) == {}
    assert pre.derived_values(default_answers(), {}) == {}


def test_parent_argv_is_the_command_line_of_the_hooks_parent():
    """cookiecutter runs the hook as its child: the hook reads cookiecutter's own arguments."""
    child = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('pre', {str(pre.__file__)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(module.parent_argv())\n"
    )
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
    result = subprocess.run(
        [sys.executable, "-c", parent, "gh:org/x", "--no-input"], capture_output=True, text=True, check=True
    )
    assert "'gh:org/x', '--no-input'" in result.stdout


def cookiecutter_cli(tmp_path, *words):
    """Run the cookiecutter command line as a user would, in tmp_path."""
    tmp_path.mkdir(exist_ok=True)
    program = Path(sys.executable).with_name("cookiecutter")
    return subprocess.run([str(program), *words], cwd=tmp_path, capture_output=True, text=True, check=False)


def test_pasted_rerun_command_derives_nothing_from_the_refused_answer(tmp_path):
    """Refused with --no-input, the printed command (plus a new slug) bakes without prompts, nothing at /opt/class."""
    refused = cookiecutter_cli(tmp_path, str(TEMPLATE), "--no-input", "project_slug=class", "create_venv=no")
    assert refused.returncode != 0
    assert list(tmp_path.iterdir()) == []
    lines = refused.stderr.splitlines()
    command = shlex.split(lines[lines.index(next(line for line in lines if "adding project_slug=" in line)) + 1])
    assert command[:3] == ["cookiecutter", str(TEMPLATE), "--no-input"]
    pasted = cookiecutter_cli(tmp_path, *command[1:], "project_slug=my_notes")
    assert pasted.returncode == 0, pasted.stdout + pasted.stderr
    project = tmp_path / "my_notes"
    assert "/opt/my_notes" in (project / "README.md").read_text()
    # The same project as asking for my_notes in the first place (secrets and git history aside).
    direct = cookiecutter_cli(
        tmp_path / "direct", str(TEMPLATE), "--no-input", "project_slug=my_notes", "create_venv=no"
    )
    assert direct.returncode == 0, direct.stderr
    assert project_files(project) == project_files(tmp_path / "direct" / "my_notes")


def project_files(project):
    """Every file of a baked project but its secrets and git history, as {path: text}."""
    return {
        str(path.relative_to(project)): path.read_text()
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.parts and path.name != ".env"
    }


@pytest.fixture
def no_git_identity(tmp_path, monkeypatch):
    """A HOME without ~/.gitconfig and no system config: git knows no user."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)


def git(root, *words):
    return subprocess.run(["git", *words], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def test_init_git_makes_a_first_commit_by_the_author(tmp_path, no_git_identity):
    root = tmp_path / "shop"
    root.mkdir()
    (root / "app.py").write_text("x = 1\n")
    (root / ".gitignore").write_text(".env\n")
    (root / ".env").write_text("FLASK_SECRET_KEY=secret\n")
    assert post.init_git(root, default_answers(author_name="Ann O'Neil", author_email="ann@example.com"))
    assert git(root, "log", "--format=%an <%ae>") == "Ann O'Neil <ann@example.com>"
    assert git(root, "ls-files").split() == [".gitignore", "app.py"]
    assert git(root, "status", "--porcelain") == ""


def test_init_git_runs_once(tmp_path, no_git_identity):
    """Generating over an existing project (--overwrite-if-exists) adds no commit and leaves .git alone."""
    (tmp_path / "app.py").write_text("x = 1\n")
    assert post.init_git(tmp_path, default_answers())
    index = (tmp_path / ".git" / "index").read_bytes()
    assert post.init_git(tmp_path, default_answers()) is False
    assert git(tmp_path, "rev-list", "--count", "HEAD") == "1"
    assert (tmp_path / ".git" / "index").read_bytes() == index


def test_init_git_leaves_a_project_inside_a_repository_alone(tmp_path):
    git(tmp_path, "init", "--quiet")
    root = tmp_path / "shop"
    root.mkdir()
    assert post.init_git(root, default_answers()) is False
    assert not (root / ".git").exists()


def test_init_git_without_git_does_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(post.shutil, "which", lambda name: None)
    assert post.init_git(tmp_path, default_answers()) is False
    assert not (tmp_path / ".git").exists()


def test_next_steps_say_where_the_project_is_and_what_to_run(tmp_path):
    text = post.next_steps(tmp_path / "my notes", default_answers(project_slug="shop"), venv_ready=True)
    assert f"cd '{tmp_path}/my notes'" in text
    assert ".venv/bin/flask --app shop run --debug" in text
    assert ".venv/bin/pytest" in text
    assert "README.md has the deploy steps" in text
    assert "python3 -m venv" not in text
    text = post.next_steps(tmp_path, default_answers(), venv_ready=False)
    assert "python3 -m venv .venv" in text


def test_generation_ends_with_next_steps_and_a_committed_repository(tmp_path):
    """What a user sees at the end of `cookiecutter --no-input`: the next steps, last."""
    result = cookiecutter_cli(tmp_path, str(TEMPLATE), "--no-input", "project_slug=shop", "create_venv=no")
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().splitlines()[-1] == "README.md has the deploy steps for your server."
    assert f"cd {tmp_path / 'shop'}" in result.stdout
    assert git(tmp_path / "shop", "status", "--porcelain") == ""
    assert ".env" not in git(tmp_path / "shop", "ls-files").split()
