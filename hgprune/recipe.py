"""Recipes: YAML → the frozen settings dataclasses of :mod:`hgprune.settings`, with the key path of every error.

The hardened loader reads plain values only (no Python tags), refuses duplicate keys, alias bombs and absurd files;
unknown keys fail with a close-match suggestion; wrong types and out-of-range values fail with
``file: section.key: must be …, got …``. ``--set key.path=value`` overrides go through the same checks because they
are applied to the raw mapping before validation.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from hgprune.errors import HgpruneError
from hgprune.prune.depth import get_importance
from hgprune.settings import (  # noqa: F401 (the recipe's sections, re-exported where recipes are read)
    BASELINE,
    MAX_NAME_CHARS,
    MAX_SEED,
    MAX_SHOWN_CHARS,
    NAME_RULE,
    PRUNE,
    ROLES,
    SCRATCH,
    BaselineSection,
    DataSection,
    DistillSection,
    EvalSection,
    ExportSection,
    FinetuneSection,
    ModelSection,
    OutputSection,
    ProfileSection,
    PruneSection,
    Recipe,
    SearchSection,
    SweepSection,
    SynthSection,
    TargetSection,
    TrainSection,
    _unwrap,
    build,
    field_types,
    is_safe_name,
    printable,
    shown,
    type_at,
)

_shown, _printable = shown, printable


# Limits on a recipe file, checked while it is read so that nothing large is ever built: recipes are a few KB of
# settings nested four deep; the limits leave a wide margin and stop alias bombs ("billion laughs") and absurd files.
MAX_RECIPE_BYTES = 1_000_000
MAX_RECIPE_NODES = 100_000  # YAML nodes with every alias counted as the nodes it expands to
MAX_RECIPE_DEPTH = 64  # nesting of mappings and lists


class RecipeYAMLError(yaml.MarkedYAMLError):
    """A YAML document hgprune refuses although it is valid YAML (duplicate key, over a limit)."""


class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain values, no Python tags) that refuses duplicate keys and counts nodes as they are
    composed, aliases expanded, so a bomb or absurd nesting stops before any Python object is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0
        self._expanded: dict[int, int] = {}  # id(node) → nodes it stands for, aliases expanded

    def _count(self, nodes: int, mark: yaml.Mark) -> None:
        self._nodes += nodes
        if self._nodes > MAX_RECIPE_NODES:
            problem = f"more than {MAX_RECIPE_NODES:,} values (aliases expanded)"
            raise RecipeYAMLError(problem=problem, problem_mark=mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        mark = self.peek_event().start_mark
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if id(node) not in self._expanded:  # an alias inside its own anchor: an infinitely deep value
                raise RecipeYAMLError(problem="an alias refers to a value that contains it", problem_mark=mark)
            self._count(self._expanded[id(node)], mark)
            return node
        self._depth += 1
        if self._depth > MAX_RECIPE_DEPTH:
            raise RecipeYAMLError(problem=f"nested deeper than {MAX_RECIPE_DEPTH} levels", problem_mark=mark)
        before = self._nodes
        self._count(1, mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._expanded[id(node)] = self._nodes - before
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else []:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            try:
                if key in first_line:
                    raise RecipeYAMLError(
                        problem=f"duplicate key {_shown(key)} (first at line {first_line[key] + 1}); "
                        "the later one would silently replace it",
                        problem_mark=key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it below
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> Any:
    """Parse recipe YAML with :class:`_RecipeLoader`; YAML errors propagate (callers name the file)."""
    loader = _RecipeLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict:
    """A recipe file as a mapping: at most :data:`MAX_RECIPE_BYTES`, plain values only, no duplicate keys."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_RECIPE_BYTES + 1)
        if len(data) > MAX_RECIPE_BYTES:
            raise HgpruneError(f"{path}: recipe is larger than {MAX_RECIPE_BYTES:,} bytes; recipes hold settings only")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise HgpruneError(f"{path}: no such recipe file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HgpruneError(f"{path}: cannot read recipe ({type(exc).__name__})") from None
    try:
        raw = load_yaml_text(text)
    except RecipeYAMLError as exc:
        raise HgpruneError(f"{path}:{exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else "?"
        raise HgpruneError(
            f"{path}:{line}: YAML tag not allowed ({exc.problem}); recipes hold plain values only"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise HgpruneError(f"{path}{line}: invalid YAML ({problem[:MAX_SHOWN_CHARS]})") from None
    if raw is None:
        raise HgpruneError(f"{path}: recipe is empty")
    if not isinstance(raw, dict):
        raise HgpruneError(f"{path}: recipe must be a mapping of sections, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` strings (values parsed as YAML scalars/lists) to a copy of ``raw``."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise HgpruneError(f"--set {_shown(item)}: expected key.path=value")
        key_path, text = item.split("=", 1)
        key_path = key_path.strip()
        try:
            value = load_yaml_text(text) if text.strip() else None
        except RecipeYAMLError as exc:
            raise HgpruneError(f"--set {_printable(key_path)}: {exc.problem}") from None
        except yaml.YAMLError:
            raise HgpruneError(f"--set {_printable(key_path)}: value {_shown(text)} is not valid YAML") from None
        _set_path(raw, key_path, value)
    return raw


def _set_path(raw: dict, key_path: str, value: Any) -> None:
    keys = key_path.split(".")
    node = raw
    for depth, key in enumerate(keys):
        parent = _unwrap(type_at(Recipe, keys[:depth]))[0]
        if dataclasses.is_dataclass(parent) and key not in field_types(parent):
            where = ".".join(keys[: depth + 1])
            close = difflib.get_close_matches(key, field_types(parent), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise HgpruneError(f"--set {key_path}: no such key {where!r}{hint}")
        if depth == len(keys) - 1:
            node[key] = value
            return
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise HgpruneError(f"--set {key_path}: {'.'.join(keys[: depth + 1])} is not a mapping")
        node = child


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe file; errors name the file and the key path."""
    raw = apply_overrides(read_yaml(path), overrides or [])
    try:
        recipe = build(Recipe, raw)
        if ":" not in recipe.prune.depth_importance:  # an unknown name fails at load, not after the baseline trained
            get_importance(recipe.prune.depth_importance)
    except HgpruneError as exc:
        raise HgpruneError(f"{path}: {exc}") from None
    if recipe.name == "run":
        stem = Path(path).stem
        if not is_safe_name(stem):
            raise HgpruneError(f"{path}: the run name would be {_shown(stem)}, which {NAME_RULE}; set name: in it")
        recipe = dataclasses.replace(recipe, name=stem)
    return recipe


def dump_recipe(recipe: Recipe, version: str) -> str:
    """The resolved recipe as YAML, stamped with the hgprune version that ran it."""
    header = f"# resolved recipe, written by hgprune {version}\n"
    return header + yaml.safe_dump({"hgprune_version": version, **recipe.to_dict()}, sort_keys=False)


def differing_keys(recipe: Recipe) -> dict:
    """The part of ``recipe.to_dict()`` that differs from the defaults (``Recipe()``), nested as in a recipe file:
    the shortest recipe that loads back to ``recipe`` (``name``, ``seed`` and ``model`` are always kept)."""
    same = object()

    def diff(value, default):
        if value == default:
            return same
        if isinstance(value, dict) and isinstance(default, dict):
            return {k: d for k, v in value.items() if (d := diff(v, default.get(k, same))) is not same}
        return value

    full, defaults = recipe.to_dict(), Recipe().to_dict()
    out = diff(full, defaults)
    out = {} if out is same else out
    if "prune" in out and recipe.prune.steps:  # the target in full: what a reader looks for first
        target = {k: v for k, v in full["prune"]["target"].items() if v is not None}
        out["prune"] = {"target": target, **{k: v for k, v in out["prune"].items() if k != "target"}}
    return {"name": full["name"], "seed": full["seed"], "model": full["model"], **out}


# What a resumed run may change: keys no completed step depends on (where files go, speed of the data loader and of
# evaluation batches, how latency is sampled). Everything else must equal the recipe the run started with.
RESUME_MUTABLE = ("export", "output", "data.workers", "eval.batch_size", "profile.repeats", "profile.warmup")


def recipe_from_resolved(text: str) -> Recipe:
    """The recipe a run directory recorded (``recipe.yaml``)."""
    raw = load_yaml_text(text)
    if not isinstance(raw, dict):
        raise HgpruneError(f"resolved recipe must be a mapping of sections, got {type(raw).__name__}")
    raw.pop("hgprune_version", None)
    return build(Recipe, _without_unset_unknowns(raw, Recipe))


def _without_unset_unknowns(raw: dict, cls: type) -> dict:
    """A recorded recipe without the keys an earlier version wrote as null and no longer has (they set nothing)."""
    fields = field_types(cls)
    out = {}
    for key, value in raw.items():
        if key not in fields and value is None:
            continue
        bare = _unwrap(fields.get(key))[0]
        out[key] = (
            _without_unset_unknowns(value, bare)
            if isinstance(value, dict) and dataclasses.is_dataclass(bare)
            else value
        )
    return out


def recipe_changes(old: Recipe, new: Recipe) -> tuple[list[str], list[str]]:
    """Key paths whose values differ between two recipes, split into (allowed on resume, refused on resume)."""
    changed: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
        elif a != b:
            changed.append(path)

    walk(old.to_dict(), new.to_dict(), "")
    allowed = [p for p in changed if any(p == m or p.startswith(m + ".") for m in RESUME_MUTABLE)]
    return allowed, [p for p in changed if p not in allowed]
