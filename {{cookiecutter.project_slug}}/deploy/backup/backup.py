{% set backup_dir = cookiecutter._stack.install.system.backup_dir.format(slug=cookiecutter.project_slug) %}
{% set suffix = {"sqlite": ".sqlite3", "postgresql": ".dump", "mysql": ".sql"}[cookiecutter.database] %}
"""Back up the {{ cookiecutter.project_slug }} database into {{ backup_dir }}, keeping the newest copies.

Run daily by {{ cookiecutter.project_slug }}-backup.timer, as {{ cookiecutter.project_slug }}, with the app's settings (the database URL) in the
environment; `systemctl start {{ cookiecutter.project_slug }}-backup.service` takes one now. README.md says how to restore.
"""

import os
{% if cookiecutter.database == "sqlite" %}
import sqlite3
{% else %}
import subprocess
{% endif %}
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

BACKUP_DIR = Path({{ backup_dir | tojson }})
PREFIX = {{ (cookiecutter.project_slug ~ "-") | tojson }}
SUFFIX = {{ suffix | tojson }}
# Two weeks of daily copies: time to notice a bad change before the last copy from before it goes.
KEEP = 14


{% if cookiecutter.database == "sqlite" %}
def dump(url, target):
    """SQLite's online backup: a consistent copy, page by page, while the app keeps writing."""
    source = sqlite3.connect(url.database)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
{% elif cookiecutter.database == "postgresql" %}
def dump(url, target):
    """pg_dump's custom format (compressed, restored with pg_restore): one snapshot, writes go on meanwhile."""
    command = [
        "pg_dump",
        "--format=custom",
        f"--host={url.host}",
        f"--port={url.port or 5432}",
        f"--username={url.username}",
        f"--file={target}",
        url.database,
    ]
    # The password goes in the environment, never on a command line other users can read.
    subprocess.run(command, env=dict(os.environ, PGPASSWORD=url.password or ""), check=True)
{% else %}
def dump(url, target):
    """mariadb-dump in one transaction: a consistent snapshot of InnoDB tables without locking out writes."""
    command = [
        "mariadb-dump",
        "--single-transaction",
        f"--host={url.host}",
        f"--port={url.port or 3306}",
        f"--user={url.username}",
        f"--result-file={target}",
        url.database,
    ]
    # The password goes in the environment, never on a command line other users can read.
    subprocess.run(command, env=dict(os.environ, MYSQL_PWD=url.password or ""), check=True)
{% endif %}


def prune(directory, keep):
    """Delete all but the newest `keep` backups (their names sort by time)."""
    backups = sorted(directory.glob(f"{PREFIX}*{SUFFIX}"))
    for old in backups[:-keep]:
        old.unlink()
    return backups[-keep:]


def main():
    url = make_url(os.environ["FLASK_SQLALCHEMY_DATABASE_URI"])
    target = BACKUP_DIR / f"{PREFIX}{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}{SUFFIX}"
    # Written under another name first: a dump cut short never counts as a copy or pushes a good one out.
    partial = target.with_name(f".{target.name}.partial")
    try:
        dump(url, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    kept = prune(BACKUP_DIR, KEEP)
    print(f"{target} ({target.stat().st_size} bytes); {len(kept)} backups kept")


if __name__ == "__main__":
    sys.exit(main())
