"""The plan is data: the hot queries, their targets and the cache's key families come from a
plan file; the generic code names no application; a malformed plan file is a clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from foundation import plan
from foundation.config import DEFAULT_PLAN, PLAN_KPIS, ConfigError, Settings, load_settings
from tests.conftest import PROJECT_ROOT

CORE = ("foundation", "reads", "operations", "ui", "views", "agent", "reports")
APPLICATION_WORDS = re.compile(r"salesflow|message_events|hot_leads|rlhf_|dm_conversations|"
                               r"lead_verifications|idps:", re.I)


def test_no_application_is_named_in_the_generic_code():
    assert all((PROJECT_ROOT / folder).is_dir() for folder in CORE)
    named = [f"{path.relative_to(PROJECT_ROOT)}:{n}"
             for folder in CORE for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), start=1)
             if APPLICATION_WORDS.search(line)]
    assert named == []


def test_the_demo_plan_drives_the_review_kpis_and_labels():
    found = plan.load(DEFAULT_PLAN)
    assert [q.name for q in found.hot_queries if q.review] == ["Q1 message events list",
                                                              "Q9 hot leads"]
    assert found.label("SELECT * FROM leads WHERE user_id = $1 AND p_score >= $2") == \
        "Q9 hot leads"
    assert "hot_leads:*" in found.redis_key_families


def test_another_teams_plan_replaces_it(tmp_path, monkeypatch):
    own = tmp_path / "plan.toml"
    own.write_text('name = "Shop"\nredis_key_families = ["cart:*"]\n'
                   '[[hot_queries]]\nname = "Checkout"\nmatch = "FROM orders WHERE cart = \\\\$1"\n'
                   'target_ms = 80\nreview = true\n')
    found = plan.current(Settings(plan_file=str(own)))
    assert found.names == ["Checkout"] and found.hot_queries[0].target_ms == 80
    assert plan.key_families(Settings(plan_file=str(own))) == ("cart:*",)
    assert plan.key_families(Settings(plan_file=str(own), redis_key_families=("x:*",))) == (
        "x:*",)


def test_the_plans_kpi_targets_are_the_settings_unless_a_setting_says_otherwise(tmp_path):
    demo = load_settings({}, {})
    # the demo's plan holds the targets the pages have always judged by
    assert {k: getattr(demo, k) for k in PLAN_KPIS} == {k: getattr(Settings(), k)
                                                        for k in PLAN_KPIS}
    own = tmp_path / "plan.toml"
    own.write_text('name = "Shop"\n[kpis]\nkpi_slow_ms = 500\nredis_hit_rate_target = 0.9\n')
    shop = load_settings({"DBPULSE_PLAN_FILE": str(own)}, {})
    assert (shop.kpi_slow_ms, shop.redis_hit_rate_target) == (500.0, 0.9)
    assert shop.buffer_cache_hit_threshold == Settings().buffer_cache_hit_threshold
    overridden = load_settings({"DBPULSE_PLAN_FILE": str(own), "DBPULSE_KPI_SLOW_MS": "750"},
                               {"settings": {"redis_hit_rate_target": 0.8}})
    assert (overridden.kpi_slow_ms, overridden.redis_hit_rate_target) == (750.0, 0.8)
    for text, said in (("[kpis]\nslow = 3\n", "holds only kpi_slow_ms"),
                       ('[kpis]\nkpi_slow_ms = "fast"\n', "kpi_slow_ms must be a number")):
        own.write_text(text)
        with pytest.raises(ConfigError, match=said):
            load_settings({"DBPULSE_PLAN_FILE": str(own)}, {})


@pytest.mark.parametrize("text, said", [
    ('name = "x"\n[[hot_queries]]\nname = "Q"\nmatch = "a\n', "line 4"),
    ('[[hot_queries]]\nname = "Q"\n', "needs a name and a match"),
    ('[[hot_queries]]\nname = "Q"\nmatch = "(unclosed"\n', "no regular expression"),
    ('[[hot_queries]]\nname = "Q"\nmatch = "a"\ntarget_ms = "fast"\n', "must be a number"),
])
def test_a_malformed_plan_file_says_where(tmp_path, text, said):
    broken = tmp_path / "plan.toml"
    broken.write_text(text)
    with pytest.raises(ConfigError, match=said):
        plan.load(broken)


def test_a_missing_plan_file_says_how_to_fix_it(tmp_path):
    with pytest.raises(ConfigError, match="set plan_file"):
        plan.load(Path(tmp_path / "nothing.toml"))
