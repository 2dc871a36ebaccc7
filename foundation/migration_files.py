"""Prepared migration files as data: read, split into statements, classified by the lock they
take, and linted with squawk. A migration is NNNN_name.sql with an optional
NNNN_name.rollback.sql beside it. Statements are split with PostgreSQL's own parser (pglast), so
dollar-quoted bodies stay whole. Running them is operations/migrations.py's job."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from pglast import ast, parse_sql
from pglast.parser import ParseError, split

from foundation.columns import Column
from foundation.config import Settings
from foundation.identifiers import qualified
from foundation.roles import ActionError

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "sql" / "migrations"
FILE_NAME = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)\.sql$")


class MigrationError(ActionError):
    """A migration cannot be read, planned or run; the message says why."""

    kind = "migration"


@dataclass
class Statement:
    text: str
    autocommit: bool          # must run alone, outside a transaction
    lock: str                 # the strongest table lock it takes, in plain words
    table: str | None         # the table it works on, schema-qualified when known
    index_name: str | None = None   # for index builds: the index to check afterwards
    # CONCURRENTLY index work waits for every older transaction to end: that wait is not a wait
    # for a lock that blocks anyone, so the short admin lock timeout must not cut it
    waits_for_snapshots: bool = False


@dataclass
class Migration:
    version: str
    name: str
    path: Path
    rollback_path: Path | None
    checksum: str
    statements: list[Statement] = field(default_factory=list)
    rollback_statements: list[Statement] = field(default_factory=list)


# --- reading ----------------------------------------------------------------------------------

def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MigrationError(f"{path.name} is not UTF-8 text (byte {exc.start}); save it as "
                             "UTF-8") from exc
    except IsADirectoryError as exc:
        raise MigrationError(f"{path.name} is a folder, not a migration file: rename or move "
                             "it") from exc
    except OSError as exc:  # a symlink loop, a dangling link, no permission
        raise MigrationError(f"{path.name} cannot be read: {exc.strerror or exc}") from exc


def version_number(text: str, what: str) -> int:
    """A version as given on the command line or the page ("0001" or "1").

    >>> version_number("0003", "--up-to")
    3
    >>> version_number("0001; DROP TABLE x", "--up-to")
    Traceback (most recent call last):
    ...
    foundation.migration_files.MigrationError: --up-to must be a migration version such as 0001, not '0001; DROP TABLE x'
    """
    if not re.fullmatch(r"\d{1,9}", text.strip()):
        raise MigrationError(f"{what} must be a migration version such as 0001, not {text!r}")
    return int(text)


def _relation(node) -> str | None:
    if node is None:
        return None
    return qualified(node.schemaname or "public", node.relname)


def _object_name(obj) -> str:
    parts = obj.objname if isinstance(obj, ast.ObjectWithArgs) else obj
    if isinstance(parts, tuple):
        return ".".join(getattr(p, "sval", "?") for p in parts)
    return getattr(parts, "sval", "?")


def classify(text: str) -> Statement:
    """What a statement needs: a transaction or not, the lock it takes, the table it touches."""
    stmt = parse_sql(text)[0].stmt
    if isinstance(stmt, ast.TransactionStmt):
        raise MigrationError(
            "contains its own transaction control (BEGIN/COMMIT/ROLLBACK). Remove it: DB Pulse "
            "runs ordinary statements in a transaction itself and CONCURRENTLY ones alone, which "
            "an explicit BEGIN would break (CREATE INDEX CONCURRENTLY cannot run inside one).")
    if isinstance(stmt, ast.IndexStmt):
        return Statement(text, bool(stmt.concurrent),
                         "SHARE UPDATE EXCLUSIVE (reads and writes go on)" if stmt.concurrent
                         else "SHARE (blocks writes for the whole build)",
                         _relation(stmt.relation),
                         qualified(stmt.relation.schemaname or "public", stmt.idxname)
                         if stmt.idxname else None, waits_for_snapshots=bool(stmt.concurrent))
    if isinstance(stmt, ast.DropStmt):
        concurrent = bool(getattr(stmt, "concurrent", False))
        names = [_object_name(obj) for obj in (stmt.objects or ())]
        return Statement(text, concurrent,
                         "SHARE UPDATE EXCLUSIVE" if concurrent
                         else "ACCESS EXCLUSIVE on the object (and its table)",
                         ", ".join(names) or None, waits_for_snapshots=concurrent)
    if isinstance(stmt, ast.ReindexStmt):
        concurrent = any(getattr(p, "defname", "") == "concurrently" for p in (stmt.params or ()))
        return Statement(text, concurrent, "SHARE UPDATE EXCLUSIVE" if concurrent
                         else "ACCESS EXCLUSIVE on the index, SHARE on its table",
                         _relation(stmt.relation), waits_for_snapshots=concurrent)
    if isinstance(stmt, (ast.VacuumStmt, ast.AlterSystemStmt)):
        return Statement(text, True, "SHARE UPDATE EXCLUSIVE" if isinstance(stmt, ast.VacuumStmt)
                         else "none", None)
    if isinstance(stmt, ast.CreateTableAsStmt):  # CREATE MATERIALIZED VIEW
        return Statement(text, False, "ACCESS SHARE on the tables it reads", _relation(
            stmt.into.rel))
    if isinstance(stmt, ast.RefreshMatViewStmt):
        return Statement(text, False, "EXCLUSIVE (reads go on)" if stmt.concurrent
                         else "ACCESS EXCLUSIVE (blocks readers)", _relation(stmt.relation))
    if isinstance(stmt, ast.AlterTableStmt):
        return Statement(text, False, "ACCESS EXCLUSIVE for most forms (blocks reads and writes)",
                         _relation(stmt.relation))
    if isinstance(stmt, (ast.CreateFunctionStmt, ast.CommentStmt, ast.GrantStmt,
                         ast.CreateStmt, ast.ViewStmt)):
        return Statement(text, False, "none on existing tables",
                         _relation(getattr(stmt, "relation", None)))
    return Statement(text, False, "depends on the statement", None)


def blocks_others(statement: Statement) -> bool:
    """Whether the statement's lock stops the application's reads or writes while it runs.

    >>> blocks_others(classify("CREATE INDEX CONCURRENTLY i ON t (a)"))
    False
    >>> blocks_others(classify("CREATE INDEX i ON t (a)"))
    True
    """
    return "block" in statement.lock or statement.lock.startswith("ACCESS EXCLUSIVE")


def parse_statements(text: str, name: str) -> list[Statement]:
    try:
        pieces = [p for p in split(text, with_parser=True) if p.strip()]
    except ParseError as exc:
        location = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        line = text[:location].count("\n") + 1 if location is not None else "?"
        raise MigrationError(f"{name}: SQL syntax error near line {line}: {exc.args[0]}") from exc
    if not pieces:
        raise MigrationError(f"{name} contains no SQL statement")
    statements = []
    for number, piece in enumerate(pieces, 1):
        try:
            statements.append(classify(piece))
        except MigrationError as exc:
            raise MigrationError(f"{name}, statement {number}: {exc}") from exc
    return statements


def migrations_dir(settings: Settings) -> Path:
    return Path(settings.migrations_dir) if settings.migrations_dir else DEFAULT_DIR


def discover(directory: Path = DEFAULT_DIR) -> list[Migration]:
    directory = Path(directory)
    if not directory.is_dir():
        raise MigrationError(f"the migrations directory {directory} does not exist; set "
                             "DBPULSE_MIGRATIONS_DIR (or --dir) to the right one")
    migrations: dict[str, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        if path.name.endswith(".rollback.sql"):
            continue
        match = FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: a migration is named NNNN_name.sql")
        version, name = match.groups()
        clash = next((m for m in migrations.values() if int(m.version) == int(version)), None)
        if clash:
            raise MigrationError(f"two migrations have version {int(version)}: "
                                 f"{clash.path.name} and {path.name}")
        text = _read(path)
        rollback = path.with_name(path.name.removesuffix(".sql") + ".rollback.sql")
        migration = Migration(version, name, path, rollback if rollback.exists() else None,
                              hashlib.sha256(text.encode()).hexdigest())
        migration.statements = parse_statements(text, path.name)
        if migration.rollback_path:
            migration.rollback_statements = parse_statements(_read(rollback), rollback.name)
        migrations[version] = migration
    return [migrations[v] for v in sorted(migrations, key=int)]


# --- lint -------------------------------------------------------------------------------------

LINT_EXPLAINED = {
    "require-concurrent-index-creation": "Builds the index without CONCURRENTLY: writes to the "
                                         "table wait until it finishes.",
    "prefer-robust-stmts": "Cannot simply be re-run after a failure half-way (add IF NOT EXISTS "
                           "/ IF EXISTS).",
    "require-lock-timeout": "No lock_timeout in the file. DB Pulse sets one for every run, so "
                            "this is covered when applied through DB Pulse.",
    "require-statement-timeout": "No statement_timeout in the file. DB Pulse sets one suited to "
                                 "index builds for every run.",
    "disallowed-unique-constraint": "Adding a unique constraint scans the table under an "
                                    "ACCESS EXCLUSIVE lock; build a unique index CONCURRENTLY "
                                    "first.",
    "adding-not-nullable-field": "Adding a NOT NULL column rewrites or scans the table under "
                                 "an ACCESS EXCLUSIVE lock.",
}


def lint(migration: Migration) -> list[dict]:
    """squawk's findings for a migration file, each explained in plain words."""
    binary = shutil.which("squawk") or str(Path(__file__).resolve().parent.parent / ".venv"
                                           / "bin" / "squawk")
    if not Path(binary).exists():
        return [{"rule": "squawk missing", "line": None,
                 "explanation": "squawk is not installed (pip install squawk-cli)."}]
    result = subprocess.run([binary, "--reporter", "json", str(migration.path)],
                            capture_output=True, text=True, timeout=60)
    try:
        findings = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return [{"rule": "squawk failed", "line": None, "explanation": result.stderr.strip()}]
    return [{"rule": f.get("rule_name"), "line": (f.get("line") or 0) + 1,
             "explanation": LINT_EXPLAINED.get(f.get("rule_name"), f.get("message")),
             "squawk": f.get("message")} for f in findings]


LINT_COLUMNS = {"rule": Column("squawk rule"), "line": Column("Line", "count", width="small"),
                "explanation": Column("Why", explains=True)}
