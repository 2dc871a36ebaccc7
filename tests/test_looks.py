"""One look (foundation/looks.py): a read marked read_once is made once on a connection while a
look lasts, and every time outside one; the block size is read once per connection."""

import psycopg

from foundation import server
from foundation.looks import one_look, read_once
from reads import probes, replication


def _counted(conn: psycopg.Connection, sent: list) -> None:
    """conn's statements appended to `sent` as they are sent."""
    execute = conn.execute

    def counting(query, *args, **kwargs):
        sent.append(str(query))
        return execute(query, *args, **kwargs)
    conn.execute = counting


def test_a_look_reads_the_probes_ledger_and_the_standbys_once(scratch_database):
    sent: list[str] = []
    with psycopg.connect(scratch_database, autocommit=True) as conn:
        _counted(conn, sent)

        def reads() -> int:
            before = len(sent)
            assert probes.own_reads(conn) == {}  # no ledger in this database
            assert replication.standbys(conn).empty
            return len(sent) - before
        outside = [reads(), reads()]
        with one_look(conn):
            inside = [reads(), reads()]
            with one_look(conn):  # nested: still the outer look
                inside.append(reads())
        after = reads()
    assert outside == [2, 2] and after == 2  # the ledger's existence, the standbys
    assert inside == [2, 0, 0]


def test_a_read_given_arguments_is_not_shared(scratch_database):
    made = []

    @read_once
    def settings_read(conn, name="server_version"):
        made.append(name)
        return conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0]
    with psycopg.connect(scratch_database) as conn, one_look(conn):
        settings_read(conn), settings_read(conn)
        settings_read(conn, "block_size"), settings_read(conn, "block_size")
    assert made == ["server_version", "block_size", "block_size"]


def test_the_block_size_is_read_once_per_connection(scratch_database):
    sent: list[str] = []
    with psycopg.connect(scratch_database) as first, psycopg.connect(scratch_database) as second:
        _counted(first, sent)
        _counted(second, sent)
        sizes = [server.block_size(first), server.block_size(first), server.block_size(second)]
    assert sizes == [8192] * 3
    assert len(sent) == 2  # the first connection's one read and the second's
