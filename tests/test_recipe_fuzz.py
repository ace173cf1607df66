"""Any YAML document → a valid Recipe or the one-line recipe error, never another exception."""

import dataclasses

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hgprune.errors import HgpruneError
from hgprune.recipe import Recipe, load_recipe


def _keys(cls) -> list[str]:
    names = []
    for f in dataclasses.fields(cls):
        names.append(f.name)
        inner = f.type if isinstance(f.type, type) else None
        if inner is not None and dataclasses.is_dataclass(inner):
            names += _keys(inner)
    return names


KNOWN = sorted(
    {f.name for f in dataclasses.fields(Recipe)} | {"arch", "N", "M", "kept", "kind", "epochs", "lr", "target"}
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["hg1", "hg8", "macs", "l1", "1e-3", "synthpose", "cubic"]),
)
keys = st.one_of(st.sampled_from(KNOWN), st.text(max_size=8))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_any_document_is_a_recipe_or_a_one_line_error(tmp_path, doc):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        recipe = load_recipe(path)
    except HgpruneError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert isinstance(recipe, Recipe)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_any_text_is_a_recipe_or_a_one_line_error(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    try:
        load_recipe(path)
    except HgpruneError as exc:
        assert "\n" not in str(exc)
