"""AppTest for the Overview: live numbers, and each server failing on its own."""

import redis
from streamlit.testing.v1 import AppTest

from reads.redis_cache import HIT_RATE_LABEL
from tests.conftest import PROJECT_ROOT

APP = str(PROJECT_ROOT / "app.py")


def _run() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, at.exception
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_shows_live_numbers(production_env, redis_url):
    app = redis.Redis.from_url(redis_url)
    app.set("overview:probe", "x", ex=60)
    app.get("overview:probe")  # at least one lookup: the rate is a number, not n/a
    app.delete("overview:probe")
    at = _run()
    metrics = _metrics(at)
    assert metrics["PostgreSQL"][:2].isdigit()
    assert metrics["Buffer cache hit rate"].endswith("%")
    assert metrics[HIT_RATE_LABEL].endswith("%")
    assert "MB" in metrics["Database size"]
    # the tables' and indexes' rates are the Buffer cache page's (one read of every
    # relation's statistics less on each load): a link here, no figure
    assert int(metrics["Blocks read from disk"].replace(",", "")) >= 0
    assert not {"Tables hit rate", "Indexes hit rate"} & set(metrics)
    assert "Tables' and indexes' hit rates, and where the misses are" in [
        link.label for link in at.get("page_link")]
    # the test server's statistics were never reset: a time, not "never reset"
    since = next(m for m in at.metric if m.label == "Statistics since (or before)")
    assert since.value[:3].isalpha() and since.value[-5:-3].isdigit() and len(since.value) <= 12
    assert "(server start) or before" in since.help
    assert not at.error
    capability_table = at.dataframe[0].value
    assert "pg_stat_statements" in set(capability_table["capability"])
    badges = [m.value for m in at.markdown if "badge[" in m.value]
    assert any("target (≥ 99 %)" in b for b in badges)


def test_overview_with_redis_down_still_shows_postgres(production_env, closed_port):
    production_env.setenv("REDIS_URL", f"redis://127.0.0.1:{closed_port}/0")
    at = _run()
    assert "Buffer cache hit rate" in _metrics(at)
    assert HIT_RATE_LABEL not in _metrics(at)
    [error] = at.error
    assert "Redis is not available" in error.value and "Connection refused" in error.value


def test_overview_with_postgres_down_still_shows_redis(production_env, closed_port):
    production_env.setenv("DATABASE_URL", f"postgresql://u:p@127.0.0.1:{closed_port}/db")
    at = _run()
    assert HIT_RATE_LABEL in _metrics(at)
    assert "Buffer cache hit rate" not in _metrics(at)
    [error] = at.error
    assert "PostgreSQL is not available" in error.value


def test_overview_without_configuration_explains_what_to_set(production_env):
    production_env.delenv("DATABASE_URL")
    production_env.delenv("REDIS_URL")
    at = _run()
    assert any("DATABASE_URL" in info.value for info in at.info)


def test_broken_configuration_is_reported_not_raised(production_env):
    production_env.setenv("DBPULSE_ROLE", "superhero")
    at = _run()
    assert any("role must be one of" in e.value for e in at.error)


def test_refresh_button_clears_cached_results(production_env):
    at = _run()
    at.sidebar.button[0].click().run()
    assert not at.exception
    assert "Buffer cache hit rate" in _metrics(at)


def test_the_database_size_is_read_apart_and_not_with_every_load(production_env, database_url):
    """Reading the size visits every file of the database: the Overview reads it every
    SIZE_TTL_S, with its time, not whenever its other figures expire."""
    import psycopg

    from ui import loaders

    def size_reads() -> int:
        with psycopg.connect(database_url) as conn:
            return conn.execute("""
                SELECT coalesce(sum(calls), 0) FROM extensions.pg_stat_statements
                WHERE query LIKE '%%pg_database_size%%/* dbpulse */'
                  AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                """).fetchone()[0]

    before = size_reads()
    size = next(m for m in _run().metric if m.label == "Database size")
    assert "MB" in size.value
    assert "read at " in size.help and "again after 10 minutes" in size.help
    assert size_reads() == before + 1
    loaders.postgres_overview.clear()  # the Overview's figures expire, the size not yet
    assert _metrics(_run())["Database size"] == size.value
    assert size_reads() == before + 1


def test_the_overview_and_the_indexes_page_judge_one_read(production_env):
    """Reached from the Overview, the Indexes page judges the read the Overview's index checks
    made (while it is cached): the catalogue is read once, and both name the same findings."""
    from operations import checks

    reads = []  # counted in this process: other tests read the same database meanwhile
    read = checks.index_reads
    production_env.setattr(checks, "index_reads", lambda *a, **k: reads.append(1) or read(*a, **k))
    overview = _run()
    banners = [e.value for e in list(overview.warning) + list(overview.error)]
    indexes = AppTest.from_file(APP, default_timeout=30)
    indexes.run()
    indexes.switch_page("views/indexes.py").run()
    assert not indexes.exception, indexes.exception
    assert len(reads) == 1
    duplicates = _metrics(indexes)["Duplicate or redundant"]
    assert int(duplicates) >= 2  # the demo's planted ones
    assert any(f"{duplicates} indexes are covered by another index" in b for b in banners), banners


def test_a_page_judging_the_shared_index_read_is_dated_by_it(production_env):
    """The Overview judging the index read the Indexes page left cached says the read's time,
    not its own load's: the findings are as old as that read."""
    import time

    from ui import loaders

    indexes = AppTest.from_file(APP, default_timeout=30)
    indexes.run()
    indexes.switch_page("views/indexes.py").run()
    assert not indexes.exception, indexes.exception
    read_at = [c.value for c in indexes.caption if c.value.startswith("As of ")][0]
    time.sleep(2.1)
    loaders.postgres_overview.clear()  # the Overview's own figures read anew; the index read not
    overview = _run()
    said = [c.value for c in overview.caption if c.value.startswith("As of ")][0]
    assert said.startswith(read_at[:len("As of HH:MM:SS UTC")]), (said, read_at)
    assert "from the cache" in said


def test_the_indexes_pages_own_lists_say_when_they_were_read(production_env):
    """On the Indexes page judging the Overview's cached index read, the lists it reads itself
    (the least scanned, the sequential scans) are newer than the findings: they say their
    time."""
    import time
    from datetime import datetime

    from ui import loaders

    overview = _run()
    read_at = [c.value for c in overview.caption if c.value.startswith("As of ")][0]
    time.sleep(2.1)
    loaders.indexes_data.clear()
    indexes = AppTest.from_file(APP, default_timeout=30)
    indexes.run()
    indexes.switch_page("views/indexes.py").run()
    assert not indexes.exception, indexes.exception
    said = [c.value for c in indexes.caption if c.value.startswith("As of ")][0]
    assert said.startswith(read_at[:len("As of HH:MM:SS UTC")]), (said, read_at)
    least = [c.value for c in indexes.caption if c.value.startswith("Least scanned first.")][0]
    assert least.endswith(" UTC, later than the findings above."), least
    lists_at = datetime.strptime(least.split("Read at ")[1][:8], "%H:%M:%S")
    findings_at = datetime.strptime(read_at[len("As of "):len("As of HH:MM:SS")], "%H:%M:%S")
    assert 2 <= (lists_at - findings_at).total_seconds() % 86400 < 60  # midnight between
    assert "Read at " + least.split("Read at ")[1] in [c.value for c in indexes.caption]
