"""Decision table for the shipped `databases` preset, loaded alone under `default: allow`."""

from __future__ import annotations

import gzip
import json

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import load_preset

JSON = [("Content-Type", "application/json")]
SUPABASE = "https://api.supabase.com/v1/projects/abcdefghijklmnop"
PROJECT = "https://abcdefghijklmnop.supabase.co"
NEON = "https://console.neon.tech/api/v2/projects/proj-1"
NEON_SQL = "https://ep-cool-darkness-123456.us-east-2.aws.neon.tech/sql"
PLANETSCALE = "https://api.planetscale.com/v1/organizations/acme/databases/shop"
PSDB = "https://aws.connect.psdb.cloud/psdb.v1alpha1.Database/Execute"


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return load_preset(tmp_path_factory, "databases")


def sql(query: str, **extra: object) -> bytes:
    return json.dumps({"query": query, **extra}).encode()


CASES = [
    # Supabase Management API
    pytest.param("GET", "https://api.supabase.com/v1/projects", [], b"", "allow", None,
                 id="supabase-list-projects-flows"),
    pytest.param("GET", f"{SUPABASE}/api-keys?reveal=false", [], b"", "allow", None,
                 id="supabase-list-api-keys-flows"),
    pytest.param("POST", f"{SUPABASE}/database/query", JSON,
                 sql("select count(*) from users", read_only=True), "allow",
                 "databases/supabase-read-only-sql", id="supabase-read-only-select-flows"),
    pytest.param("POST", f"{SUPABASE}/database/query", JSON,
                 sql("select * from users limit 5"), "hold", "databases/supabase-sql",
                 id="supabase-sql-without-read-only-held"),
    pytest.param("POST", f"{SUPABASE}/database/query", JSON,
                 sql("insert into plans (name) values ('pro')"), "hold",
                 "databases/supabase-sql", id="supabase-insert-held-high"),
    pytest.param("POST", f"{SUPABASE}/database/query", JSON, sql("DROP TABLE users;"),
                 "hold", "databases/supabase-destructive-sql", id="supabase-drop-table-held"),
    pytest.param("POST", f"{SUPABASE}/database/query", JSON,
                 sql("drop\n  table users cascade", read_only=True), "hold",
                 "databases/supabase-destructive-sql",
                 id="supabase-drop-with-read-only-still-held"),
    pytest.param("POST", f"{SUPABASE}/database/migrations", JSON,
                 sql("alter table users add column plan text", name="add_plan"), "hold",
                 "databases/supabase-destructive-sql", id="supabase-alter-migration-held"),
    pytest.param("DELETE", SUPABASE, [], b"", "hold", "databases/supabase-project-delete",
                 id="supabase-project-delete-held"),
    pytest.param("POST", f"{SUPABASE}/secrets", JSON,
                 json.dumps([{"name": "STRIPE_KEY", "value": "x"}]).encode(), "hold",
                 "databases/supabase-secrets-and-keys", id="supabase-secrets-held"),
    pytest.param("PATCH", f"{SUPABASE}/config/auth", JSON,
                 json.dumps({"disable_signup": False}).encode(), "hold",
                 "databases/supabase-config-changes", id="supabase-auth-config-held"),
    pytest.param("POST", "https://api.supabase.com/v1/branches/br_1/merge", JSON, b"{}",
                 "hold", "databases/supabase-branch-merge-reset-delete",
                 id="supabase-branch-merge-held"),
    pytest.param("POST", f"{SUPABASE}/database/backups/restore-pitr", JSON,
                 json.dumps({"recovery_time_target_unix": 1700000000}).encode(), "hold",
                 "databases/supabase-backup-restore", id="supabase-pitr-restore-held"),
    # Supabase project data APIs flow; pg-meta is admin.
    pytest.param("POST", f"{PROJECT}/rest/v1/rpc/get_dashboard", JSON, b"{}", "allow", None,
                 id="supabase-rest-rpc-flows"),
    pytest.param("DELETE", f"{PROJECT}/rest/v1/todos?id=eq.1", [], b"", "allow", None,
                 id="supabase-rest-row-delete-flows"),
    pytest.param("POST", f"{PROJECT}/pg/query", JSON, sql("truncate audit_log"), "hold",
                 "databases/supabase-destructive-sql", id="supabase-pg-meta-truncate-held"),
    pytest.param("POST", f"{PROJECT}/pg/query", JSON, sql("select 1"), "hold",
                 "databases/supabase-pg-meta-writes", id="supabase-pg-meta-query-held"),
    # Neon API
    pytest.param("GET", f"{NEON}/branches", [], b"", "allow", None,
                 id="neon-list-branches-flows"),
    pytest.param("POST", f"{NEON}/branches", JSON,
                 json.dumps({"branch": {"name": "try-migration"}}).encode(), "allow", None,
                 id="neon-create-branch-flows"),
    pytest.param("DELETE", NEON, [], b"", "hold", "databases/neon-project-delete",
                 id="neon-project-delete-held"),
    pytest.param("DELETE", f"{NEON}/branches/br-1", [], b"", "hold",
                 "databases/neon-branch-delete-restore", id="neon-branch-delete-held"),
    pytest.param("POST", f"{NEON}/branches/br-1/roles/app/reset_password", [], b"", "hold",
                 "databases/neon-roles-and-passwords", id="neon-password-reset-held"),
    pytest.param("PATCH", f"{NEON}/endpoints/ep-1", JSON,
                 json.dumps({"endpoint": {"autoscaling_limit_max_cu": 8}}).encode(), "hold",
                 "databases/neon-endpoints", id="neon-endpoint-change-held"),
    pytest.param("POST", f"{NEON}/branches/br-1/databases", JSON,
                 json.dumps({"database": {"name": "app", "owner_name": "app"}}).encode(),
                 "hold", "databases/neon-database-changes", id="neon-database-create-held"),
    # Neon serverless driver (SQL over HTTP)
    pytest.param("POST", NEON_SQL, JSON, sql("SELECT * FROM users WHERE id = $1", params=[1]),
                 "allow", None, id="neon-sql-select-flows"),
    pytest.param("POST", NEON_SQL, JSON,
                 sql("DELETE FROM sessions WHERE expires_at < now()", params=[]), "allow",
                 None, id="neon-sql-delete-with-where-flows"),
    pytest.param("POST", NEON_SQL, JSON, sql("DELETE FROM users", params=[]), "hold",
                 "databases/neon-destructive-sql", id="neon-sql-delete-all-held"),
    pytest.param("POST", NEON_SQL, JSON,
                 json.dumps({"queries": [
                     {"query": "select 1", "params": []},
                     {"query": "drop schema public cascade", "params": []}]}).encode(),
                 "hold", "databases/neon-destructive-sql", id="neon-sql-transaction-drop-held"),
    pytest.param("POST", NEON_SQL, [*JSON, ("Content-Encoding", "gzip")],
                 gzip.compress(sql("update users set is_admin = true")), "hold",
                 "databases/neon-destructive-sql", id="neon-sql-gzip-update-all-held"),
    pytest.param("POST", NEON_SQL, JSON, b"DROP TABLE users", "hold",
                 "databases/neon-destructive-sql", id="neon-sql-non-json-fails-closed"),
    # PlanetScale
    pytest.param("GET", f"{PLANETSCALE}/branches", [], b"", "allow", None,
                 id="planetscale-list-branches-flows"),
    pytest.param("POST", f"{PLANETSCALE}/deploy-requests", JSON,
                 json.dumps({"branch": "add-index", "into_branch": "main"}).encode(), "allow",
                 None, id="planetscale-open-deploy-request-flows"),
    pytest.param("POST", f"{PLANETSCALE}/deploy-requests/7/deploy", [], b"", "hold",
                 "databases/planetscale-deploy-request-deploy",
                 id="planetscale-deploy-request-deploy-held"),
    pytest.param("POST", f"{PLANETSCALE}/branches/main/passwords", JSON,
                 json.dumps({"role": "admin"}).encode(), "hold",
                 "databases/planetscale-passwords", id="planetscale-password-create-held"),
    pytest.param("DELETE", PLANETSCALE, [], b"", "hold",
                 "databases/planetscale-database-delete", id="planetscale-database-delete-held"),
    pytest.param("POST", f"{PLANETSCALE}/branches/main/promote", [], b"", "hold",
                 "databases/planetscale-branch-production-settings",
                 id="planetscale-branch-promote-held"),
    pytest.param("POST", PSDB, JSON, sql("select * from orders where id = 1", session=None),
                 "allow", None, id="planetscale-http-select-flows"),
    pytest.param("POST", PSDB, JSON, sql("SELECT TRUNCATE(price, 2) FROM orders"), "allow",
                 None, id="planetscale-truncate-function-flows"),
    pytest.param("POST", PSDB, JSON, sql("TRUNCATE TABLE orders"), "hold",
                 "databases/planetscale-destructive-sql", id="planetscale-http-truncate-held"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "url", "headers", "body", "action", "rule"), CASES)
def test_databases_preset(
    policy: Policy,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    action: str,
    rule: str | None,
) -> None:
    decision = policy.decide(build_request(method, url, headers, body))
    assert (decision.action, decision.rule) == (action, rule), decision.reason


def test_destructive_sql_is_critical(policy: Policy) -> None:
    view = build_request("POST", NEON_SQL, JSON, sql("drop database prod"))
    assert policy.decide(view).severity == "critical"
