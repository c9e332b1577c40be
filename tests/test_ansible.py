"""The generated Ansible playbook: every stack's passes ansible-playbook's syntax check, a spread of
stacks (both OS families, every server and database) passes ansible-lint's production profile offline,
and each project keeps exactly the task files its playbooks use."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from combinations import ROOTLESS_COMBINATIONS, SUPPORTED_COMBINATIONS, stack_id, tls_sample
from helpers import TEMPLATE, bake, load_hook, require_tool

TASK_FILE = re.compile(r"^\s+ansible\.builtin\.(?:import|include)_tasks: (?:tasks/)?(\S+\.yml)$", re.MULTILINE)
# Every stack with its default TLS answer, and the other TLS answers with SQLite (tests/combinations.py).
STACKS = tls_sample(SUPPORTED_COMBINATIONS)
LINTED = [
    {},
    {"tls": "own", "database": "sqlite"},
    {"tls": "none", "database": "mysql"},
    {"wsgi_server": "uwsgi", "web_server": "apache", "tls": "own", "os_family": "rhel", "database": "sqlite"},
    {"wsgi_server": "uwsgi", "web_server": "apache", "process_manager": "supervisord", "database": "postgresql"},
    {"wsgi_server": "mod_wsgi", "web_server": "apache", "os_family": "rhel", "database": "mysql"},
    {"web_server": "none", "process_manager": "supervisord", "os_family": "rhel", "database": "postgresql"},
    {"wsgi_server": "uwsgi", "os_family": "rhel"},
    {"wsgi_server": "mod_wsgi", "web_server": "apache", "database": "sqlite"},
]


def playbook_dir(project):
    """deploy/ansible with the example inventory in place, as a user would start."""
    ansible = project / "deploy" / "ansible"
    shutil.copy(ansible / "inventory.example.ini", ansible / "inventory.ini")
    return ansible


def reached_task_files(ansible):
    """The task files the playbooks import, followed through the task files themselves."""
    reached, pending = set(), [ansible / "site.yml", ansible / "rollback.yml"]
    while pending:
        for name in TASK_FILE.findall(pending.pop().read_text()):
            if name not in reached:
                reached.add(name)
                pending.append(ansible / "tasks" / name)
    return reached


def test_every_stack_passes_the_syntax_check(cookies, tmp_path):
    """ansible-playbook --syntax-check of site.yml and rollback.yml, for every stack (TLS sampled) in one run."""
    ansible_playbook = require_tool("ansible-playbook", "the ansible-core package, pinned in tox.ini")
    playbooks = []
    for answers in STACKS:
        ansible = playbook_dir(bake(cookies, **answers))
        playbooks += [ansible / "site.yml", ansible / "rollback.yml"]
    result = subprocess.run(
        [ansible_playbook, "--syntax-check", "-i", playbooks[0].parent / "inventory.ini", *playbooks],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("playbook: ") == len(playbooks)


@pytest.mark.parametrize("answers", LINTED, ids=stack_id)
def test_playbook_passes_ansible_lint(cookies, answers):
    """ansible-lint's production profile, offline: only what ansible-core ships, nothing from Galaxy."""
    ansible_lint = require_tool("ansible-lint", "the ansible-lint package, pinned in tox.ini")
    ansible = playbook_dir(bake(cookies, **answers))
    command = [ansible_lint, "--nocolor", "site.yml", "rollback.yml"]
    result = subprocess.run(command, cwd=ansible, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


@pytest.mark.parametrize("answers", STACKS[::5], ids=stack_id)
def test_project_keeps_only_the_task_files_it_uses(cookies, answers):
    """Every task file a project has is reached from its playbooks, and every one they reach is there."""
    ansible = bake(cookies, **answers) / "deploy" / "ansible"
    kept = {path.name for path in (ansible / "tasks").glob("*.yml")}
    assert kept == reached_task_files(ansible)


def test_every_task_file_serves_some_stack():
    """No task file in the template is dead: the post-generation hook keeps each one for some stack."""
    template_tasks = TEMPLATE / "{{cookiecutter.project_slug}}" / "deploy" / "ansible" / "tasks"
    names = {path.name for path in template_tasks.glob("*.yml")}
    site = (template_tasks.parent / "site.yml").read_text() + (template_tasks.parent / "rollback.yml").read_text()
    for path in template_tasks.glob("*.yml"):
        site += path.read_text()
    named = set(re.findall(r"tasks/([\w-]+\.yml)", site)) | set(TASK_FILE.findall(site))
    named |= {f"firewall-{os}.yml" for os in ("debian", "rhel")}
    named |= {f"{name}.yml" for name in ("nginx", "apache", "systemd", "supervisord", "nginx-http", "apache-http")}
    named |= {f"certificate-{tls}.yml" for tls in ("letsencrypt", "own")}
    assert names <= named


@pytest.mark.parametrize("answers", ROOTLESS_COMBINATIONS[:1], ids=stack_id)
def test_rootless_project_has_no_playbook(cookies, answers):
    """The playbook deploys as root: a shared host without root gets none."""
    assert not (bake(cookies, **answers) / "deploy" / "ansible").exists()


def test_unused_ansible_tasks_follows_imports(tmp_path):
    """The hook keeps a task file imported by another task file, and drops one nothing imports."""
    hook = load_hook("post_gen_project")
    tasks = tmp_path / "deploy" / "ansible" / "tasks"
    tasks.mkdir(parents=True)
    (tasks.parent / "site.yml").write_text("- tasks:\n    - name: A\n      ansible.builtin.import_tasks: tasks/a.yml\n")
    (tasks.parent / "rollback.yml").write_text("---\n")
    (tasks / "a.yml").write_text("- name: B\n  ansible.builtin.import_tasks: b.yml\n")
    (tasks / "b.yml").write_text("---\n")
    (tasks / "c.yml").write_text("---\n")
    assert hook.unused_ansible_tasks(Path(tmp_path)) == ["deploy/ansible/tasks/c.yml"]


APACHE_DEBIAN = [s for s in STACKS if s["web_server"] == "apache" and s["os_family"] == "debian"]


@pytest.mark.parametrize("answers", APACHE_DEBIAN[::2], ids=stack_id)
def test_playbook_enables_the_modules_the_site_names(cookies, answers):
    """The playbook's a2enmod list is the one in the Apache site's header, which `apache2 -t` is checked with."""
    project = bake(cookies, **answers)
    site = (project / "deploy" / "apache" / f"{project.name}.conf").read_text()
    (line,) = re.findall(r"^#\s+a2enmod (.+)$", site, re.M)
    settings = (project / "deploy" / "ansible" / "group_vars" / "all.yml").read_text()
    (listed,) = re.findall(r"^app_apache_modules: \[(.*)\]$", settings, re.M)
    assert [name.strip() for name in listed.split(",")] == line.split()
