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


def unsafe_calls(source: str, where: str = "<source>") -> list[str]:
    """Every call in ``source`` that could execute a pickled or tagged object, as ``where:line what``."""
    found = []
    for node, owner, name in _calls(ast.parse(source)):
        at = f"{where}:{node.lineno}"
        if owner == "torch" and name == "load":
            value = {kw.arg: kw.value for kw in node.keywords}.get("weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                found.append(f"{at} torch.load without weights_only=True")
        if owner == "yaml" and name in {"load", "unsafe_load", "full_load", "load_all"}:
            found.append(f"{at} yaml.{name}")
        if owner in {"pickle", "dill", "cloudpickle"} and name in {"load", "loads"}:
            found.append(f"{at} {owner}.{name}")
        if owner == "np" and name == "load" and _allows_pickle(node):
            found.append(f"{at} np.load(allow_pickle=True)")
        if isinstance(node.func, ast.Name) and node.func.id in {"eval", "exec"}:
            found.append(f"{at} {node.func.id}")
    return found


def _allows_pickle(node: ast.Call) -> bool:
    return any(kw.arg == "allow_pickle" and getattr(kw.value, "value", False) for kw in node.keywords)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_can_execute_a_pickle_or_a_tag(path):
    assert unsafe_calls(path.read_text(), str(path)) == []


def test_the_check_catches_every_unsafe_call():
    """The same predicate the package is checked with, on code that does each unsafe thing once."""
    bad = (
        "import torch, yaml, pickle, numpy as np\n"
        "torch.load('x', weights_only=False)\ntorch.load('y')\nyaml.load(s)\npickle.loads(b)\n"
        "np.load('z', allow_pickle=True)\neval('1')\ntorch.load('ok', weights_only=True)\nyaml.safe_load(s)\n"
    )
    assert [f.split(" ", 1)[0] for f in unsafe_calls(bad)] == [f"<source>:{n}" for n in range(2, 8)]
