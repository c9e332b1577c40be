"""bench/serve.py's bookkeeping: one-change variants, rotation and the table it prints (not the speed it measures)."""

import importlib.util
from pathlib import Path

import pytest

SERVE = Path(__file__).resolve().parents[1] / "bench" / "serve.py"


@pytest.fixture(scope="module")
def serve():
    spec = importlib.util.spec_from_file_location("bench_serve", SERVE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def path_result(rps, p99, non2xx=None):
    return {
        "rps": rps,
        "p50_ms": p99 / 4,
        "p99_ms": p99,
        "requests": int(rps * 5),
        "ok": int(rps * 5),
        "non2xx": non2xx or {},
        "socket_errors": {},
        "app_cpu_ms_per_req": 1.0,
        "app_cpu": 1.0,
        "front_cpu": 1.0,
        "wrk_cpu": 1.0,
        "others_pct": 10.0,
    }


def record(variant, round_number, rps, p99):
    return {
        "stack": "uwsgi-nginx",
        "variant": variant,
        "round": round_number,
        "cold_start_s": 1.0,
        "rss_mib": 100.0,
        "pss_mib": 50.0,
        "paths": {path: path_result(rps, p99) for path in ("/", "/health", "/notes/")},
    }


def results(runs):
    return {"started": "2026-01-01 00:00:00 UTC", "args": {"connections": 50, "duration": 5}, "runs": runs}


def test_experiment_spec_registers_a_variant_of_generated(serve):
    """NAME:STACK:GLOB:OLD=>NEW;;... becomes the variant generated:NAME with its edits, newlines unescaped."""
    serve.EXPERIMENTS.clear()
    name = serve.experiment("norss:uwsgi-nginx:*.ini:reload-on-rss = 256\\n=>;;*.ini:threads = 2=>threads = 1")
    assert name == "generated:norss"
    assert serve.EXPERIMENTS[name] == {
        "uwsgi-nginx": [("*.ini", "reload-on-rss = 256\n", ""), ("*.ini", "threads = 2", "threads = 1")]
    }


def test_rounds_rotate_the_order_of_the_variants(serve):
    assert [serve.rotate(["a", "b", "c"], n) for n in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_table_gives_medians_and_holds_each_generated_variant_to_the_bar(serve):
    """Medians over rounds; before and generated each get a bar row; 502s of the overload run are counted."""
    rounds = [(900, 800, 500, 300), (1100, 900, 600, 100), (1000, 1000, 700, 200)]
    runs = []
    for n, (gen, hand, tutorial, before) in enumerate(rounds, start=1):
        runs += [
            record("generated", n, gen, 20),
            record("hand", n, hand, 15),
            record("tutorial", n, tutorial, 30),
            record("before", n, before, 90),
        ]
    runs[-1]["overload"] = path_result(200, 900, {502: 40, 503: 2})  # the last round's c200 run
    table = serve.summarize(results(runs))
    assert table["uwsgi-nginx"]["generated"]["paths"]["/"]["rps"] == 1000
    assert table["uwsgi-nginx"]["hand"]["paths"]["/"]["rps"] == 900
    text = serve.render(results(runs))
    assert "| uwsgi-nginx | `/` | generated | 1.11 | 1.67 | 1.33 | met |" in text
    assert "| uwsgi-nginx | `/` | before | 0.22 | 0.33 | 6.00 | MISSED |" in text
    assert "| uwsgi-nginx | before | 3 | 100 | 50 | 1.00 | 200 | 40 | 2 | 0 | 0 |" in text
    assert not [line for line in text.splitlines() if "| hand | 1." in line or "| tutorial | 1." in line]


def test_a_failed_answer_misses_the_bar_whatever_the_speed(serve):
    row = serve.bar_row(
        "gunicorn-none", "/", "generated", path_result(5000, 1, {502: 1}), path_result(10, 50), path_result(10, 50)
    )
    assert row.endswith("| MISSED |")


def test_a_variant_that_leaves_connections_unanswered_misses_the_bar(serve):
    """Little's law: 10,000 req/s at 0.3 ms mean is 3 connections in flight of wrk's 50; the others waited."""
    starving = dict(path_result(10000, 1), served=3.0)
    row = serve.bar_row("uwsgi-none", "/", "generated", starving, path_result(10, 50), path_result(10, 50))
    assert row.endswith("| MISSED (only 3 of 50 connections served) |")
    answered = dict(path_result(10000, 1), served=49.0)
    assert serve.bar_row("uwsgi-none", "/", "generated", answered, path_result(10, 50), path_result(10, 50)).endswith(
        "| met |"
    )
