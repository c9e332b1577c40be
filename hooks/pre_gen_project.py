"""Check every answer and every combination before cookiecutter writes a file.

All problems are printed at once, each with what would be accepted, followed by
a command line that asks again with the other answers kept. Cookiecutter
removes the half-made project directory when this hook exits non-zero.
"""

import json
import keyword
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

# Values reach Python as JSON so that quotes, backslashes and braces stay data.
ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""

# Names the slug may not take: it becomes a Python package, a system user,
# a database role and a unit name, so it must not shadow or collide with any.
RESERVED_SLUGS = {
    # packages the project imports or files it ships
    "flask",
    "werkzeug",
    "jinja2",
    "click",
    "itsdangerous",
    "markupsafe",
    "sqlalchemy",
    "flask_sqlalchemy",
    "flask_migrate",
    "alembic",
    "dotenv",
    "gunicorn",
    "uwsgi",
    "mod_wsgi",
    "psycopg",
    "pymysql",
    "pytest",
    "wsgi",
    "tests",
    "migrations",
    "instance",
    "deploy",
    # system accounts and services
    "root",
    "daemon",
    "bin",
    "sys",
    "adm",
    "nobody",
    "nginx",
    "apache",
    "httpd",
    "postgres",
    "mysql",
    "mariadb",
    "supervisor",
    "supervisord",
    "systemd",
    "sshd",
    "www",
    "admin",
    # SQL words that cannot be a role or database name unquoted
    "all",
    "user",
    "users",
    "public",
    "select",
    "table",
    "order",
    "group",
    "grant",
    "default",
    "database",
    "role",
    "current_user",
    "session_user",
    "column",
    "where",
    "from",
    "check",
    "primary",
    "references",
}
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/boot", "/dev", "/proc", "/sys", "/run", "/tmp", "/var/tmp")
# ProtectHome= and PrivateTmp= hide these from a hardened service; SELinux
# labels home directories user_home_t, which the web server may not read.
NOT_FOR_SYSTEM_INSTALL = ("/home", "/root")
NOT_FOR_ROOTLESS_INSTALL = ("/opt", "/srv", "/var")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
SLUG = re.compile(r"[a-z][a-z0-9_]{0,31}")
DOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
URL_PREFIX = re.compile(r"/|(/[A-Za-z0-9][A-Za-z0-9._~-]*)+/?")
ABSOLUTE_PATH = re.compile(r"(/[A-Za-z0-9_][A-Za-z0-9._-]*)+")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
HTTPS_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")


def is_under(path, prefixes):
    """Tell whether path is one of prefixes or lies below one."""
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def check_text(answers):
    """Free-text answers: any printable text, one line, of sane length."""
    problems = []
    for key, limit in (("project_name", 100), ("description", 300), ("author_name", 100), ("author_email", 254)):
        value = answers[key]
        if not value.strip() or len(value) > limit or CONTROL_CHARACTERS.search(value):
            problems.append((key, f"{key}={value!r} must be one line of 1 to {limit} printable characters"))
    if not EMAIL.fullmatch(answers["author_email"]):
        problems.append(
            ("author_email", f"author_email={answers['author_email']!r} is not an email address, e.g. you@example.com")
        )
    return problems


def check_slug(answers):
    """The slug names the package, the service, the system user and the database."""
    slug = answers["project_slug"]
    if not SLUG.fullmatch(slug):
        return [
            (
                "project_slug",
                f"project_slug={slug!r} must be a lowercase letter followed by up to 31 "
                "lowercase letters, digits or underscores, e.g. my_app",
            )
        ]
    if keyword.iskeyword(slug) or slug in RESERVED_SLUGS or slug in sys.stdlib_module_names or slug.startswith("pg_"):
        return [
            (
                "project_slug",
                f"project_slug={slug!r} is a reserved word, a Python module or a system "
                f"account name; pick another, e.g. {slug}_app",
            )
        ]
    return []


def check_domain(answers):
    """The domain goes into server_name, ServerName and TRUSTED_HOSTS."""
    domain = answers["domain_name"]
    if DOMAIN.fullmatch(domain):
        return []
    return [
        (
            "domain_name",
            f"domain_name={domain!r} must be a lowercase host name such as example.com "
            "(letters, digits, hyphens and dots; non-ASCII names in their xn-- form)",
        )
    ]


def check_choices(answers):
    """Choice answers must be one of the offered values, booleans true or false."""
    problems = []
    for key, entries in answers["_stack"]["choices"].items():
        if answers[key] not in entries:
            problems.append((key, f"{key}={answers[key]!r} must be one of: {', '.join(entries)}"))
    for key in ("rootless", "create_venv"):
        if not isinstance(answers[key], bool):
            problems.append((key, f"{key}={answers[key]!r} must be true or false"))
    return problems


def check_url_prefix(answers):
    """The prefix is a URL path the app is mounted under."""
    prefix = answers["url_prefix"]
    if URL_PREFIX.fullmatch(prefix) and "//" not in prefix:
        return []
    return [
        (
            "url_prefix",
            f"url_prefix={prefix!r} must be / or a path such as /myapp "
            "(segments of letters, digits, '.', '_', '~' or '-')",
        )
    ]


def check_port(answers):
    """The port is an integer; the app server cannot bind a privileged one."""
    port = answers["http_port"]
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return [("http_port", f"http_port={port!r} must be a number from 1 to 65535")]
    if answers["web_server"] == "none" and int(port) < 1024:
        return [
            (
                "http_port",
                f"http_port={port} is a privileged port the unprivileged app server cannot "
                "bind (web_server=none); choose 1024 to 65535, e.g. 8000",
            )
        ]
    return []


def check_install_dir(answers):
    """The install directory is an absolute path the service user may use."""
    path = answers["install_dir"]
    if not ABSOLUTE_PATH.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
        return [
            (
                "install_dir",
                f"install_dir={path!r} must be an absolute path of letters, digits, '.', '_' and '-', e.g. /opt/my_app",
            )
        ]
    if is_under(path, SYSTEM_DIRS):
        return [
            ("install_dir", f"install_dir={path!r} lies in a system directory; use e.g. /opt/{answers['project_slug']}")
        ]
    if answers["rootless"] is True and is_under(path, NOT_FOR_ROOTLESS_INSTALL):
        return [
            (
                "install_dir",
                f"install_dir={path!r} needs root; a rootless install lives in your "
                f"home, e.g. /home/<you>/{answers['project_slug']}",
            )
        ]
    if answers["rootless"] is not True and is_under(path, NOT_FOR_SYSTEM_INSTALL):
        return [
            (
                "install_dir",
                f"install_dir={path!r} is hidden from a hardened service (ProtectHome=) "
                f"and unreadable by the web server under SELinux; use /opt/{answers['project_slug']}",
            )
        ]
    return []


def check_tls(answers):
    """What the TLS choice needs: an ACME account address and an https directory, or the certificate's files."""
    tls = answers["tls"]
    problems = []
    if tls == "letsencrypt":
        if not EMAIL.fullmatch(answers["acme_email"]):
            problems.append(
                ("acme_email", f"acme_email={answers['acme_email']!r} is not an email address, e.g. you@example.com")
            )
        if not HTTPS_URL.fullmatch(answers["acme_server"]):
            problems.append(
                (
                    "acme_server",
                    f"acme_server={answers['acme_server']!r} must be an https:// ACME directory URL, e.g. "
                    "https://acme-v02.api.letsencrypt.org/directory",
                )
            )
    if tls == "own":
        for key in ("tls_certificate", "tls_key"):
            if not ABSOLUTE_PATH.fullmatch(answers[key]):
                problems.append(
                    (key, f"{key}={answers[key]!r} must be an absolute path, e.g. /etc/ssl/private/site.key")
                )
    return problems


def requirements(answers):
    """What the chosen stack requires of the other answers: each choice's and the install kind's
    "requires" in the table of stack facts, in prompt order."""
    stack = answers["_stack"]
    chosen = [entries[answers[key]] for key, entries in stack["choices"].items()]
    chosen.append(stack["install"]["rootless" if answers["rootless"] is True else "system"])
    return [(key, rule) for entry in chosen for key, rule in entry["requires"].items()]


def check_combination(answers):
    """Refuse the stacks that cannot work, naming the choices that do."""
    return [
        (key, rule["why"].format(**answers)) for key, rule in requirements(answers) if answers[key] != rule["value"]
    ]


CHECKS = (
    check_text,
    check_slug,
    check_domain,
    check_choices,
    check_url_prefix,
    check_port,
    check_install_dir,
    check_tls,
)


def validate(answers):
    """Return (answer, message) for every problem, in prompt order."""
    problems = [problem for check in CHECKS for problem in check(answers)]
    if not any(key in answers["_stack"]["choices"] or key == "rootless" for key, _ in problems):
        # A rule on an answer already refused (http_port=0 under tls=letsencrypt) would say it twice.
        refused = {key for key, _ in problems}
        problems += [problem for problem in check_combination(answers) if problem[0] not in refused]
    return problems


def template_defaults(answers):
    """The raw defaults of cookiecutter.json from the template being rendered, or {} if unreadable."""
    for folder in (answers.get("_repo_dir"), answers.get("_template")):
        try:
            return json.loads((Path(folder) / "cookiecutter.json").read_text(encoding="utf-8"))
        except (TypeError, OSError, ValueError):
            continue
    return {}


def derived_values(answers, defaults):
    """What each templated default renders to from these answers (install_dir=/opt/<slug>, ...)."""
    from cookiecutter.environment import StrictEnvironment
    from cookiecutter.prompt import render_variable
    from jinja2 import TemplateError

    env = StrictEnvironment(context={"cookiecutter": defaults})
    derived = {}
    for key, raw in defaults.items():
        if key.startswith("_") or not isinstance(raw, str) or "{" not in raw:
            continue
        try:
            derived[key] = render_variable(env, raw, answers)
        except TemplateError:
            continue
    return derived


def parent_argv():
    """The command line of the process running this hook: cookiecutter runs hooks as its children."""
    parent = os.getppid()
    try:
        return Path(f"/proc/{parent}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        pass
    try:
        ps = subprocess.run(["ps", "-o", "args=", "-p", str(parent)], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return []
    return ps.stdout.split()


def rerun_command(answers, bad_keys, derived=None, no_input=False):
    """A cookiecutter command line that keeps every answer but the bad ones and those derived from them.

    An answer equal to what the template derives from the given answers (install_dir=/opt/<slug>)
    is left out, so it follows the new value of a refused answer instead of keeping the old one.
    """
    derived = derived or {}
    words = ["cookiecutter", answers.get("_template", "<template>")]
    if no_input:
        words.append("--no-input")
    for key, value in answers.items():
        if key.startswith("_") or key in bad_keys or derived.get(key, object()) == value:
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        words.append(f"{key}={value}")
    return shlex.join(words)


def report(answers, problems, no_input=False):
    """Describe every problem and how to answer again."""
    bad_keys = list(dict.fromkeys(key for key, _ in problems))
    derived = derived_values(answers, template_defaults(answers))
    lines = ["flask-stack cannot generate this project:"]
    lines += [f"  - {message}" for _, message in problems]
    if no_input:
        fresh = " ".join(f"{key}=<new value>" for key in bad_keys)
        lines.append(f"Nothing was written. Run again with your other answers kept, adding {fresh}:")
    else:
        lines.append("Nothing was written. Answer again, keeping your other answers, with:")
    lines.append("  " + rerun_command(answers, set(bad_keys), derived, no_input))
    return "\n".join(lines)


def main():
    answers = json.loads(ANSWERS_JSON)
    problems = validate(answers)
    if problems:
        print(report(answers, problems, no_input="--no-input" in parent_argv()), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
