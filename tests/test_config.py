import tomllib

import pytest

from foundation.config import (
    ConfigError,
    Settings,
    find_target,
    load_settings,
    load_targets,
    read_secrets,
)


def test_environment_makes_a_target_with_admin_fallback():
    targets = load_targets({"DATABASE_URL": "postgresql://a@h/db", "REDIS_URL": "redis://r:6379/0"},
                           secrets={})
    assert [t.name for t in targets] == ["db"]  # named by its database
    named = load_targets({"DATABASE_URL": "postgresql://a@h/db", "DBPULSE_TARGET_NAME": "prod"},
                         secrets={})
    assert [t.name for t in named] == ["prod"]
    assert targets[0].admin_url == "postgresql://a@h/db"
    assert not targets[0].has_separate_admin_url
    assert targets[0].redis_url == "redis://r:6379/0"


def test_separate_admin_url_is_used():
    [target] = load_targets({"DATABASE_URL": "postgresql://viewer@h/db",
                             "DATABASE_ADMIN_URL": "postgresql://admin@h/db"}, secrets={})
    assert target.admin_url == "postgresql://admin@h/db"
    assert target.has_separate_admin_url


def test_secrets_with_several_named_targets_and_redis_lists():
    secrets = {"DATABASE_URL": "postgresql://d@h/db",
               "targets": {"prod": {"database_url": "postgresql://p@h/db",
                                    "redis_url": ["redis://a:1/0", "redis://b:2/0"]},
                           "staging": {"database_url": "postgresql://s@h/db",
                                       "redis_url": "redis://c:3/0"}}}
    targets = load_targets({}, secrets)
    assert [t.name for t in targets] == ["default", "prod", "staging"]
    assert find_target("prod", targets).redis_urls == ("redis://a:1/0", "redis://b:2/0")
    assert find_target(None, targets).name == "default"


def test_target_without_database_url_is_a_clear_error():
    with pytest.raises(ConfigError, match="'broken' has no database_url"):
        load_targets({}, {"targets": {"broken": {"redis_url": "redis://x"}}})


def test_unknown_target_and_no_target_are_clear_errors():
    with pytest.raises(ConfigError, match="no target named 'nope'"):
        find_target("nope", load_targets({"DATABASE_URL": "postgresql://a@h/db"}, {}))
    with pytest.raises(ConfigError, match="set DATABASE_URL"):
        find_target(None, [])


def test_settings_from_secrets_and_environment_with_environment_winning():
    secrets = {"role": "dba", "settings": {"statement_timeout_ms": 9000, "cache_ttl_s": 10}}
    settings = load_settings({"DBPULSE_CACHE_TTL_S": "5"}, secrets)
    assert settings.role == "dba"
    assert settings.statement_timeout_ms == 9000
    assert settings.cache_ttl_s == 5
    assert settings.redis_hit_rate_target == Settings().redis_hit_rate_target


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="role must be one of"):
        load_settings({"DBPULSE_ROLE": "admin"}, {})
    with pytest.raises(ConfigError, match="statement_timeout_ms must be a int"):
        load_settings({"DBPULSE_STATEMENT_TIMEOUT_MS": "soon"}, {})


def test_malformed_secrets_file(tmp_path):
    bad = tmp_path / "secrets.toml"
    bad.write_text("[targets\nbroken")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_secrets(bad)
    assert read_secrets(tmp_path / "missing.toml") == {}


def test_a_copy_of_the_shipped_example_changes_nothing_and_its_targets_parse():
    """Copied as the README says, the example adds no target (no unreachable example host in the
    sidebar), sets no role and only default settings; its commented targets, uncommented, parse."""
    import re

    from foundation.config import PROJECT_ROOT, Settings

    text = (PROJECT_ROOT / ".streamlit" / "secrets.toml.example").read_text()
    copied = tomllib.loads(text)
    assert load_targets({}, copied) == [] and "role" not in copied
    assert load_settings({}, copied) == Settings()
    start, end = text.index("# Any number of named targets"), text.index("# Optional settings")
    named = re.sub(r"^# (\[targets\.\w+\]|\w+ = .*)$", r"\1", text[start:end], flags=re.M)
    filled = tomllib.loads(text[:start] + named + text[end:])
    targets = load_targets({}, filled)
    assert [t.name for t in targets] == ["production", "staging"]
    assert targets[0].plan_url and targets[0].probe_url and len(targets[0].redis_urls) == 1


def test_history_database_and_source():
    env = {"DATABASE_URL": "postgresql://u:p@db:5432/salesflow",
           "HISTORY_DATABASE_URL": "postgresql://u:p@hist:5432/history"}
    target = load_targets(env, {})[0]
    assert target.history_write_url == target.history_read_url == env["HISTORY_DATABASE_URL"]
    assert target.history_source == "salesflow"
    named = load_targets({}, {"targets": {"a": {"database_url": "host=db dbname=crm user=x"}}})[0]
    assert named.history_read_url == named.database_url and named.history_source == "crm"
    assert load_settings({"DBPULSE_HISTORY_RETENTION_DAYS": "30"}, {}).history_retention_days == 30


def test_an_unreadable_secrets_file_is_a_clear_error_everywhere(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    latin1 = tmp_path / "secrets.toml"
    latin1.write_bytes('role = "dba"\n# Zugang für die Prüfer\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        read_secrets(latin1)
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "cli.py"), "check"],
                            env={**os.environ, "DBPULSE_SECRETS_FILE": str(latin1)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "not UTF-8 text" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
