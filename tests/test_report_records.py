"""``report.records_to_dicts`` (the JSON's strides and decisions, a column at a time) gives what
``report.record_to_dict`` gives record by record: names for codes (None for an unknown code), floats rounded to 4
decimals, None for NaN and inf, ints and bools as they are."""

import json

import numpy as np

from hipcheck.gait import SIDE_NAMES, STRIDE_DTYPE
from hipcheck.report import record_to_dict, records_to_dicts


def test_a_column_at_a_time_equals_record_by_record():
    rng = np.random.default_rng(3)
    strides = np.zeros(50, STRIDE_DTYPE)
    for name in STRIDE_DTYPE.names:
        kind = STRIDE_DTYPE[name].kind
        if kind == "f":
            strides[name] = rng.normal(0.0, 50.0, len(strides))
        elif kind == "b":
            strides[name] = rng.random(len(strides)) < 0.5
        else:
            strides[name] = rng.integers(0, 3, len(strides))  # side 2: no such side
    floats = [n for n in STRIDE_DTYPE.names if STRIDE_DTYPE[n].kind == "f"]
    strides[floats[0]][:3] = (np.nan, np.inf, -np.inf)
    names = {"side": SIDE_NAMES}
    batch = records_to_dicts(strides, names)
    one = [record_to_dict(s, names) for s in strides]
    assert batch == one and json.dumps(batch) == json.dumps(one)
    assert [[type(v) for v in d.values()] for d in batch] == [[type(v) for v in d.values()] for d in one]
    assert {d["side"] for d in batch} == {*SIDE_NAMES[:2], None} and batch[0][floats[0]] is None
    assert records_to_dicts(strides[:0], names) == []
