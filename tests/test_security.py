"""Static checks: nothing in hgprune/ can execute a pickled or YAML-tagged object."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hgprune"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield node, owner, name


def test_sources_found():
    assert len(SOURCES) > 10


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_torch_load_is_weights_only(path):
    tree = ast.parse(path.read_text())
    for node, owner, name in _calls(tree):
        if owner == "torch" and name == "load":
            flags = {kw.arg: kw.value for kw in node.keywords}
            value = flags.get("weights_only")
            assert isinstance(value, ast.Constant) and value.value is True, f"{path}:{node.lineno} torch.load"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_unsafe_deserialisers(path):
    tree = ast.parse(path.read_text())
    for node, owner, name in _calls(tree):
        where = f"{path}:{node.lineno}"
        assert not (owner == "yaml" and name in {"load", "unsafe_load", "full_load", "load_all"}), where
        assert not (owner in {"pickle", "dill", "cloudpickle"} and name in {"load", "loads"}), where
        assert not (owner == "np" and name == "load" and _allows_pickle(node)), where
        assert not (isinstance(node.func, ast.Name) and node.func.id in {"eval", "exec"}), where


def _allows_pickle(node: ast.Call) -> bool:
    return any(kw.arg == "allow_pickle" and getattr(kw.value, "value", False) for kw in node.keywords)


def test_the_check_catches_an_unsafe_load(tmp_path):
    bad = ast.parse("import torch\ntorch.load('x', weights_only=False)\ntorch.load('y')\n")
    found = [node for node, owner, name in _calls(bad) if owner == "torch" and name == "load"]
    assert len(found) == 2
    assert all(
        not any(kw.arg == "weights_only" and getattr(kw.value, "value", None) is True for kw in n.keywords)
        for n in found
    )
