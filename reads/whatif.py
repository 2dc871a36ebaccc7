"""What-if: would a candidate index change a statement's plan? Uses hypopg's hypothetical
indexes (no build, no lock, nothing written), compares the generic plan's estimated cost
without and with the candidate."""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from foundation import plan_login
from foundation.capabilities import Extension
from reads.statements import EXPLAINABLE, ExplainError, plan_in_transaction

CANDIDATE = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\b", re.I)
HOW_TO_GET_HYPOPG = ("hypopg is not installed here. Self-hosted: install the package "
                     "postgresql-NN-hypopg (Debian/Ubuntu) or build it from source, then "
                     "CREATE EXTENSION hypopg; in the database. Supabase: enable hypopg under "
                     "Database > Extensions.")


@dataclass
class WhatIf:
    plan_before: str
    plan_after: str
    cost_before: float
    cost_after: float
    candidate_name: str

    @property
    def uses_candidate(self) -> bool:
        # hypopg names start with "<oid>"; the rest may be cut to the name length limit
        return self.candidate_name.split(">", 1)[0] + ">" in self.plan_after

    @property
    def improvement(self) -> float:
        """Share of the estimated cost the candidate saves (negative: it costs more)."""
        return 0.0 if self.cost_before == 0 else 1 - self.cost_after / self.cost_before


def total_cost(plan: str) -> float:
    match = re.search(r"cost=[\d.]+\.\.([\d.]+)", plan)
    if not match:
        raise ExplainError("the plan has no cost estimate")
    return float(match.group(1))


def candidate_statement(text: str) -> str:
    """hypopg takes a plain CREATE INDEX: drop CONCURRENTLY and IF NOT EXISTS, one statement."""
    text = text.strip().rstrip(";").strip()
    if not CANDIDATE.match(text) or ";" in text:
        raise ExplainError("The candidate must be one CREATE INDEX statement.")
    text = re.sub(r"\bCONCURRENTLY\b\s*", "", text, flags=re.I)
    return re.sub(r"\bIF\s+NOT\s+EXISTS\b\s*", "", text, flags=re.I)


def what_if(conn: psycopg.Connection, hypopg: Extension, query: str, candidate: str,
            server_version_num: int, timeout_ms: int = 5000, role: str | None = None) -> WhatIf:
    """On the plan login's connection as `role` (foundation/plan_login.py): planning the statement
    may run its IMMUTABLE functions."""
    if not hypopg.installed:
        raise ExplainError(HOW_TO_GET_HYPOPG)
    if not EXPLAINABLE.match(query):
        raise ExplainError("Only SELECT, INSERT, UPDATE, DELETE and MERGE statements have a plan.")
    statement = candidate_statement(candidate)
    schema = sql.Identifier(hypopg.schema)
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            plan_login.take_role(conn, role, timeout_ms)
            before = plan_in_transaction(conn, query, server_version_num)
            name = conn.execute(sql.SQL("SELECT indexname FROM {}.hypopg_create_index(%s)")
                                .format(schema), (statement,)).fetchone()[0]
            after = plan_in_transaction(conn, query, server_version_num)
    except psycopg.Error as exc:
        raise ExplainError(f"What-if failed: {str(exc).strip().splitlines()[0]}") from exc
    finally:
        # hypothetical indexes live in the session, not the transaction: always drop them
        if not conn.closed and not conn.broken:
            conn.execute(sql.SQL("SELECT {}.hypopg_reset()").format(schema))
    return WhatIf(before, after, total_cost(before), total_cost(after), name)
