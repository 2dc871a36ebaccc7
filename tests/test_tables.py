"""ui/tables.show pages a long frame (worst first, one page at a time) instead of sending
every row to the browser, and says which rows are shown of how many."""

from streamlit.testing.v1 import AppTest


def _script():
    import pandas as pd
    import streamlit as st

    from foundation.columns import Column
    from ui import tables

    frame = pd.DataFrame({"n": range(120)})
    shown = tables.show(frame, {"n": Column("N", "count")}, max_rows=50, key="t")
    st.session_state["shown"] = list(shown["n"])
    tables.show(frame.head(30), {"n": Column("N", "count")}, max_rows=50, total=5000,
                key="cut")


def test_a_long_frame_is_paged_and_says_which_rows_it_shows():
    at = AppTest.from_function(_script).run()
    assert not at.exception
    assert at.session_state["shown"] == list(range(50))
    assert len(at.dataframe[0].value) == 50
    assert [c.value for c in at.caption] == ["Rows 1–50 of 120.", "Rows 1–30 of the first 30 of 5,000."]
    pager = at.number_input[0]
    assert pager.label == "Page of 3" and len(at.number_input) == 1  # the short one has none
    pager.set_value(3).run()
    assert at.session_state["shown"] == list(range(100, 120))
    assert len(at.dataframe[0].value) == 20
    assert at.caption[0].value == "Rows 101–120 of 120."


def test_a_count_beyond_the_browsers_integers_is_shown_exactly():
    """A sequence's last value near 2**63 beside one with none is text with every digit (the
    browser's numbers, like a float, would round it)."""
    import pandas as pd

    from foundation.columns import Column
    from ui import tables

    frame = pd.DataFrame({"last_value": pd.Series([9200000000000000001, None, 7], dtype=object)})
    shown, _ = tables.prepare(frame, {"last_value": Column("Last value", "count")})
    assert list(shown["last_value"]) == ["9,200,000,000,000,000,001", tables.MISSING, "7"]
