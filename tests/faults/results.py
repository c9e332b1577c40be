"""The fault tier's table: failed requests per scenario and stack, printed at the end of the run.

Each row is also appended as a JSON line to RESULTS_FILE, which bench/faults.py reads.
"""

import json
import os
from pathlib import Path

RESULTS_FILE = Path(os.environ.get("FLASK_STACK_FAULTS_RESULTS", "/var/tmp/flask-stack-faults.jsonl"))
ROWS = []


def record(scenario, stack, requests, failed, detail=""):
    """One measured scenario: how many requests the load sent and how many did not answer 2xx/3xx."""
    row = {"scenario": scenario, "stack": stack, "requests": requests, "failed": failed, "detail": detail}
    ROWS.append(row)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS_FILE.open("a") as file:
        file.write(json.dumps(row) + "\n")


def table(rows):
    lines = [f"{'scenario':34} {'stack':40} {'requests':>8} {'failed':>7}  detail"]
    for row in rows:
        lines.append(f"{row['scenario']:34} {row['stack']:40} {row['requests']:8d} {row['failed']:7d}  {row['detail']}")
    return lines
