"""Median decision time at 10 to 10,000 rules (opt-in: `pytest -m bench tests/bench -s`).

The mix is what real policies hold: exact hosts, `*.` and mid-host globs, rules with no host,
regex paths and body conditions. Target: at most 20 µs median at 1,000 rules.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path

import pytest
import yaml

from policies.loader import load_policy
from policies.model import RequestView
from policies.request import build_request

pytestmark = pytest.mark.bench
SIZES = (10, 100, 1_000, 10_000)
TARGET_US_AT_1000 = 20.0


def _rule(i: int, rng: random.Random) -> dict[str, object]:
    kind = rng.random()
    action = rng.choice(["allow", "deny", "hold"])
    base: dict[str, object] = {"name": f"r{i}", "action": action, "reason": f"rule {i}"}
    method = rng.choice(["GET", "POST", "PUT", "DELETE", ["POST", "PUT", "PATCH"]])
    if kind < 0.45:
        match = {
            "host": f"svc{i}.example{i % 97}.com",
            "method": method,
            "path": f"/v{i % 3}/items/*/action{i % 7}",
        }
    elif kind < 0.65:
        match = {"host": f"*.tenant{i}.example.net", "path": "/api/**"}
    elif kind < 0.75:
        match = {"host": f"api.*.region{i}.cloud.test", "method": method}
    elif kind < 0.87:
        match = {
            "host": f"re{i}.example.org",
            "path": {"regex": rf"^/orders/\d+/(refund|cancel){i}$"},
        }
    elif kind < 0.97:
        match = {"host": f"pay{i}.example.io", "method": "POST", "json": {"amount": {"gt": i}}}
    else:
        match = {"method": "DELETE", "path": f"/no-host/{i}/**"}
    return base | {"match": match}


def _policy_file(tmp: Path, size: int) -> Path:
    rng = random.Random(size)
    document = {"version": 1, "default": "allow", "rules": [_rule(i, rng) for i in range(size)]}
    path = tmp / f"bench-{size}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _requests(size: int, count: int = 2_000) -> list[RequestView]:
    rng = random.Random(7)
    views = []
    for _ in range(count):
        i = rng.randrange(size)
        host = rng.choice([
            f"svc{i}.example{i % 97}.com", f"a.tenant{i}.example.net", f"api.eu.region{i}.cloud.test",
            f"re{i}.example.org", f"pay{i}.example.io", "unknown.example.com", "pypi.org",
        ])  # fmt: skip
        path = rng.choice(
            [f"/v{i % 3}/items/42/action{i % 7}", "/api/x/y", f"/orders/17/refund{i}", "/"]
        )
        body = json.dumps({"amount": rng.randrange(2 * size + 1)}).encode()
        views.append(
            build_request(rng.choice(["GET", "POST", "DELETE"]), f"https://{host}{path}", (), body)
        )
    return views


@pytest.mark.parametrize("size", SIZES)
def test_decision_time(tmp_path: Path, size: int) -> None:
    policy = load_policy(_policy_file(tmp_path, size))
    views = _requests(size)
    for view in views:  # warm the per-host candidate cache, as live traffic does
        policy.decide(view)
    samples = []
    for _ in range(3):
        for view in views:
            start = time.perf_counter_ns()
            policy.decide(view)
            samples.append(time.perf_counter_ns() - start)
    median_us = statistics.median(samples) / 1000
    p99_us = statistics.quantiles(samples, n=100)[98] / 1000
    cold = policy.candidates.cache_info()
    print(f"\n{size:>6} rules: median {median_us:.2f} µs, p99 {p99_us:.2f} µs per decision "
          f"({len(samples)} decisions, candidate cache {cold.currsize} hosts)")  # fmt: skip
    if size == 1_000:
        assert median_us <= TARGET_US_AT_1000


@pytest.mark.parametrize("size", SIZES)
def test_cold_decision_time(tmp_path: Path, size: int) -> None:
    """Every request to a new host: the index, not the cache, keeps this flat."""
    policy = load_policy(_policy_file(tmp_path, size))
    views = _requests(size)
    samples = []
    for view in views:
        policy.candidates.cache_clear()
        start = time.perf_counter_ns()
        policy.decide(view)
        samples.append(time.perf_counter_ns() - start)
    print(f"\n{size:>6} rules: cold median {statistics.median(samples) / 1000:.2f} µs")
