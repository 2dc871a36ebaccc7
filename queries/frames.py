"""Query results as pandas frames with dtypes from the column types, so that an empty result
still has boolean and numeric columns (a mask over an empty object column would otherwise
select columns instead of rows)."""

from __future__ import annotations

import pandas as pd
import psycopg

BOOL_OIDS = {16}
NUMBER_OIDS = {20, 21, 23, 26, 700, 701, 1700}  # int8, int2, int4, oid, float4, float8, numeric


def to_frame(cur: psycopg.Cursor) -> pd.DataFrame:
    columns = [c.name for c in cur.description]
    # object dtype keeps text as Python str/None (pandas 3 would make Arrow strings: slow to
    # iterate row by row, and missing values become NaN)
    frame = pd.DataFrame(cur.fetchall(), columns=columns, dtype=object)
    for column in cur.description:
        series = frame[column.name]
        if column.type_code in BOOL_OIDS and not series.isna().any():
            frame[column.name] = series.astype(bool)
        elif column.type_code in NUMBER_OIDS:
            frame[column.name] = pd.to_numeric(series, errors="coerce")
    return frame
