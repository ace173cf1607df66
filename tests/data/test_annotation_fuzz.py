"""Random annotation records → parsed records or the one-line data error, never another exception."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hgprune.data.mpii import load_annotations, split_records
from hgprune.errors import HgpruneError

numbers = st.one_of(st.integers(-5000, 5000), st.floats(allow_nan=True, allow_infinity=True, width=32))
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=6), numbers, st.lists(numbers, max_size=3))
point = st.lists(numbers, min_size=2, max_size=2)
maybe = lambda strategy: st.one_of(strategy, junk)  # noqa: E731

seed_record = st.fixed_dictionaries(
    {},
    optional={
        "img_paths": maybe(st.text(min_size=1, max_size=12)),
        "img_width": maybe(st.integers(1, 4000)),
        "img_height": maybe(st.integers(1, 4000)),
        "objpos": maybe(point),
        "scale_provided": maybe(st.floats(-1, 10)),
        "joint_self": maybe(st.lists(st.lists(numbers, min_size=3, max_size=3), min_size=0, max_size=17)),
        "isValidation": maybe(st.sampled_from([0, 1, 0.0, 1.0])),
    },
)
hrnet_record = st.fixed_dictionaries(
    {},
    optional={
        "image": maybe(st.text(min_size=1, max_size=12)),
        "center": maybe(point),
        "scale": maybe(st.floats(-1, 10)),
        "joints": maybe(st.lists(point, min_size=0, max_size=17)),
        "joints_vis": maybe(st.lists(st.sampled_from([0, 1]), min_size=0, max_size=17)),
    },
)
documents = st.one_of(
    st.lists(seed_record, min_size=0, max_size=4),
    st.lists(hrnet_record, min_size=0, max_size=4),
    st.lists(st.one_of(seed_record, hrnet_record, junk), max_size=4),
    junk,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_random_records_parse_or_fail_in_one_line(tmp_path, doc):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(doc))
    try:
        records = load_annotations(path)
        for split in ("train", "val"):
            split_records(records, split)
    except HgpruneError as exc:
        message = str(exc)
        assert "\n" not in message and str(path) in message
    else:
        assert isinstance(records, list) and len(records) == len(doc)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_random_bytes_fail_in_one_line(tmp_path, raw):
    path = tmp_path / "annotations.json"
    path.write_bytes(raw)
    try:
        load_annotations(path)
    except HgpruneError as exc:
        assert "\n" not in str(exc)
