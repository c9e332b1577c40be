"""Rerun the fault tier and print its table: failed requests per scenario and stack.

    python bench/faults.py [-k EXPRESSION] [--results FILE]

Runs `pytest tests/faults` (as root: it boots test hosts) with FLASK_STACK_FAULTS_RESULTS pointing at a
fresh file, then prints every row the run recorded, with tests/faults/results.py's own table. Extra
arguments after `--` go to pytest. Exits with pytest's status.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from faults.results import table  # noqa: E402 (after the path that finds it)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", help="pytest -k: only the scenarios it selects")
    parser.add_argument("--results", type=Path, help="the JSON-lines file (default: a new one in /var/tmp)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    results = args.results or Path(f"/var/tmp/flask-stack-faults-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    results.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider", *args.pytest_args]
    if args.k:
        command += ["-k", args.k]
    start = time.monotonic()
    status = subprocess.run(
        command, check=False, cwd=ROOT, env={**os.environ, "FLASK_STACK_FAULTS_RESULTS": str(results)}
    ).returncode
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    print(f"\nfault tier: {len(rows)} scenarios in {time.monotonic() - start:.0f} s (pytest exit {status}), {results}")
    for line in table(rows):
        print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
