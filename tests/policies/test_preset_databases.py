"""Decision table for the shipped `databases` preset, loaded alone under `default: allow`."""

from __future__ import annotations

import gzip
import json

import pytest

from policies.engine import Policy
from policies.request import build_request
from tests.policies.presetkit import Row, case, check_decision, load_preset

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
    case("GET", "https://api.supabase.com/v1/projects", "allow", None,
         id="supabase-list-projects-flows"),
    case("GET", f"{SUPABASE}/api-keys?reveal=false", "allow", None,
         id="supabase-list-api-keys-flows"),
    case("POST", f"{SUPABASE}/database/query", "allow", "databases/supabase-read-only-sql",
         headers=JSON, body=sql("select count(*) from users", read_only=True),
         id="supabase-read-only-select-flows"),
    case("POST", f"{SUPABASE}/database/query", "hold", "databases/supabase-sql", headers=JSON,
         body=sql("select * from users limit 5"), id="supabase-sql-without-read-only-held"),
    case("POST", f"{SUPABASE}/database/query", "hold", "databases/supabase-sql", headers=JSON,
         body=sql("insert into plans (name) values ('pro')"), id="supabase-insert-held-high"),
    case("POST", f"{SUPABASE}/database/query", "hold", "databases/supabase-destructive-sql",
         headers=JSON, body=sql("DROP TABLE users;"), id="supabase-drop-table-held"),
    case("POST", f"{SUPABASE}/database/query", "hold", "databases/supabase-destructive-sql",
         headers=JSON, body=sql("drop\n  table users cascade", read_only=True),
         id="supabase-drop-with-read-only-still-held"),
    case("POST", f"{SUPABASE}/database/migrations", "hold", "databases/supabase-destructive-sql",
         headers=JSON, body=sql("alter table users add column plan text", name="add_plan"),
         id="supabase-alter-migration-held"),
    case("DELETE", SUPABASE, "hold", "databases/supabase-project-delete",
         id="supabase-project-delete-held"),
    case("POST", f"{SUPABASE}/secrets", "hold", "databases/supabase-secrets-and-keys", headers=JSON,
         body=json.dumps([{"name": "STRIPE_KEY", "value": "x"}]).encode(),
         id="supabase-secrets-held"),
    case("PATCH", f"{SUPABASE}/config/auth", "hold", "databases/supabase-config-changes",
         headers=JSON, body=json.dumps({"disable_signup": False}).encode(),
         id="supabase-auth-config-held"),
    case("POST", "https://api.supabase.com/v1/branches/br_1/merge", "hold",
         "databases/supabase-branch-merge-reset-delete", headers=JSON, body=b"{}",
         id="supabase-branch-merge-held"),
    case("POST", f"{SUPABASE}/database/backups/restore-pitr", "hold",
         "databases/supabase-backup-restore", headers=JSON,
         body=json.dumps({"recovery_time_target_unix": 1700000000}).encode(),
         id="supabase-pitr-restore-held"),
    # Supabase project data APIs flow; pg-meta is admin.
    case("POST", f"{PROJECT}/rest/v1/rpc/get_dashboard", "allow", None, headers=JSON, body=b"{}",
         id="supabase-rest-rpc-flows"),
    case("DELETE", f"{PROJECT}/rest/v1/todos?id=eq.1", "allow", None,
         id="supabase-rest-row-delete-flows"),
    case("POST", f"{PROJECT}/pg/query", "hold", "databases/supabase-destructive-sql", headers=JSON,
         body=sql("truncate audit_log"), id="supabase-pg-meta-truncate-held"),
    case("POST", f"{PROJECT}/pg/query", "hold", "databases/supabase-pg-meta-writes", headers=JSON,
         body=sql("select 1"), id="supabase-pg-meta-query-held"),
    # Neon API
    case("GET", f"{NEON}/branches", "allow", None, id="neon-list-branches-flows"),
    case("POST", f"{NEON}/branches", "allow", None, headers=JSON,
         body=json.dumps({"branch": {"name": "try-migration"}}).encode(),
         id="neon-create-branch-flows"),
    case("DELETE", NEON, "hold", "databases/neon-project-delete", id="neon-project-delete-held"),
    case("DELETE", f"{NEON}/branches/br-1", "hold", "databases/neon-branch-delete-restore",
         id="neon-branch-delete-held"),
    case("POST", f"{NEON}/branches/br-1/roles/app/reset_password", "hold",
         "databases/neon-roles-and-passwords", id="neon-password-reset-held"),
    case("PATCH", f"{NEON}/endpoints/ep-1", "hold", "databases/neon-endpoints", headers=JSON,
         body=json.dumps({"endpoint": {"autoscaling_limit_max_cu": 8}}).encode(),
         id="neon-endpoint-change-held"),
    case("POST", f"{NEON}/branches/br-1/databases", "hold", "databases/neon-database-changes",
         headers=JSON, body=json.dumps({"database": {"name": "app", "owner_name": "app"}}).encode(),
         id="neon-database-create-held"),
    # Neon serverless driver (SQL over HTTP)
    case("POST", NEON_SQL, "allow", None, headers=JSON,
         body=sql("SELECT * FROM users WHERE id = $1", params=[1]), id="neon-sql-select-flows"),
    case("POST", NEON_SQL, "allow", None, headers=JSON,
         body=sql("DELETE FROM sessions WHERE expires_at < now()", params=[]),
         id="neon-sql-delete-with-where-flows"),
    case("POST", NEON_SQL, "hold", "databases/neon-destructive-sql", headers=JSON,
         body=sql("DELETE FROM users", params=[]), id="neon-sql-delete-all-held"),
    case("POST", NEON_SQL, "hold", "databases/neon-destructive-sql", headers=JSON,
         body=json.dumps({"queries": [
                  {"query": "select 1", "params": []},
                  {"query": "drop schema public cascade", "params": []}]}).encode(),
         id="neon-sql-transaction-drop-held"),
    case("POST", NEON_SQL, "hold", "databases/neon-destructive-sql",
         headers=[*JSON, ("Content-Encoding", "gzip")],
         body=gzip.compress(sql("update users set is_admin = true")),
         id="neon-sql-gzip-update-all-held"),
    case("POST", NEON_SQL, "hold", "databases/neon-destructive-sql", headers=JSON,
         body=b"DROP TABLE users", id="neon-sql-non-json-fails-closed"),
    # PlanetScale
    case("GET", f"{PLANETSCALE}/branches", "allow", None, id="planetscale-list-branches-flows"),
    case("POST", f"{PLANETSCALE}/deploy-requests", "allow", None, headers=JSON,
         body=json.dumps({"branch": "add-index", "into_branch": "main"}).encode(),
         id="planetscale-open-deploy-request-flows"),
    case("POST", f"{PLANETSCALE}/deploy-requests/7/deploy", "hold",
         "databases/planetscale-deploy-request-deploy",
         id="planetscale-deploy-request-deploy-held"),
    case("POST", f"{PLANETSCALE}/branches/main/passwords", "hold",
         "databases/planetscale-passwords", headers=JSON,
         body=json.dumps({"role": "admin"}).encode(), id="planetscale-password-create-held"),
    case("DELETE", PLANETSCALE, "hold", "databases/planetscale-database-delete",
         id="planetscale-database-delete-held"),
    case("POST", f"{PLANETSCALE}/branches/main/promote", "hold",
         "databases/planetscale-branch-production-settings", id="planetscale-branch-promote-held"),
    case("POST", PSDB, "allow", None, headers=JSON,
         body=sql("select * from orders where id = 1", session=None),
         id="planetscale-http-select-flows"),
    case("POST", PSDB, "allow", None, headers=JSON,
         body=sql("SELECT TRUNCATE(price, 2) FROM orders"),
         id="planetscale-truncate-function-flows"),
    case("POST", PSDB, "hold", "databases/planetscale-destructive-sql", headers=JSON,
         body=sql("TRUNCATE TABLE orders"), id="planetscale-http-truncate-held"),
]  # fmt: skip


@pytest.mark.parametrize("row", CASES)
def test_databases_preset(policy: Policy, row: Row) -> None:
    check_decision(policy, row)


def test_destructive_sql_is_critical(policy: Policy) -> None:
    view = build_request("POST", NEON_SQL, JSON, sql("drop database prod"))
    assert policy.decide(view).severity == "critical"
