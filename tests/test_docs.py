"""The documentation cannot drift: generated regions match reports/ and the code, README commands parse and the
cheap ones run, every link resolves, and the site builds strictly."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hgprune import docsgen
from hgprune.cli import build_parser
from hgprune.cli import main as cli_main
from hgprune.errors import HgpruneError

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


# ---------------------------------------------------------------------------------------------------------------
# generated regions


def test_committed_pages_equal_what_the_generator_renders():
    assert docsgen.stale_pages(ROOT) == [], "run `make docs` and commit the result"


def test_every_renderer_is_used_by_some_page():
    used = set()
    for page in docsgen.pages(ROOT):
        used |= {m.group("name") for m in docsgen.REGION.finditer(page.read_text())}
    assert used == set(docsgen.RENDERERS)


def test_a_changed_number_inside_a_region_is_detected_and_restored():
    text = (ROOT / "docs/studies/accuracy.md").read_text()
    region = next(m for m in docsgen.REGION.finditer(text) if m.group("name") == "accuracy-v3")
    body = region.group("body")
    number = re.search(r"\d+\.\d\d", body).group(0)
    drifted = text.replace(body, body.replace(number, "99.99", 1))
    assert drifted != text
    assert docsgen.render(drifted, ROOT) == text


def test_unknown_and_unbalanced_regions_are_errors_naming_the_page():
    with pytest.raises(HgpruneError, match=r"page\.md: unknown generated region 'nope'"):
        docsgen.render("<!-- BEGIN generated:nope -->\n<!-- END generated:nope -->\n", ROOT, "page.md")
    with pytest.raises(HgpruneError, match=r"page\.md: unbalanced"):
        docsgen.render("<!-- BEGIN generated:goals -->\nno end\n", ROOT, "page.md")


def test_results_tables_follow_the_report_json(tmp_path):
    """Render from a copy of reports/ whose accuracy JSON says something else: the table says it too."""
    import json
    import shutil

    shutil.copytree(ROOT / "reports/benchmarks", tmp_path / "reports/benchmarks")
    path = tmp_path / docsgen.ACCURACY["v3"]
    data = json.loads(path.read_text())
    data["results"]["default-50"]["vs_parent"].update(mean=-0.42, low=-0.5, high=-0.25)
    data["goals"][0]["met"] = False
    path.write_text(json.dumps(data))
    table = docsgen.accuracy_table(tmp_path, "v3")
    assert "−0.42 [−0.50, −0.25]" in table
    assert "**missed**" in docsgen.accuracy_goals(tmp_path, "v3").splitlines()[2]


def test_speed_goals_say_whether_their_timer_settled_each_call(tmp_path):
    """A report without the timer record (timed before the 50 ms settle) is flagged to re-measure; one with it not."""
    import json
    import shutil

    shutil.copytree(ROOT / "reports/benchmarks", tmp_path / "reports/benchmarks")
    for rel, settled in ((docsgen.DEPTH, True), (docsgen.LATENCY_MODEL, False)):
        path = tmp_path / rel
        data = json.loads(path.read_text())
        data.pop("timer", None)
        if settled:
            data["timer"] = {"settle_ms": 50.0, "ort_allow_spinning": True}
        path.write_text(json.dumps(data))
    rows = {row[0][:20]: row for row in docsgen._speed_goal_summary(tmp_path)}
    assert rows["depth-pruned hg8 spe"][2] in ("met", "**missed**")  # settled: the verdict alone
    assert rows["latency model, media"][2].endswith(f"({docsgen.UNSETTLED})")
    table = docsgen.speed_goals(tmp_path)
    depth_rows = [line for line in table.splitlines() if line.startswith("| depth-pruned")]
    model_rows = [line for line in table.splitlines() if line.startswith("| latency model")]
    assert depth_rows and all(line.endswith("| settled |") for line in depth_rows)
    assert model_rows and all(line.endswith(f"| {docsgen.UNSETTLED} |") for line in model_rows)


def test_the_gpu_latency_goal_says_not_measured_until_its_report_exists(tmp_path):
    import json
    import shutil

    shutil.copytree(ROOT / "reports/benchmarks", tmp_path / "reports/benchmarks")
    (tmp_path / docsgen.GPU_TARGET).unlink(missing_ok=True)
    gpu = [line for line in docsgen.speed_goals(tmp_path).splitlines() if line.startswith("| GPU")]
    assert len(gpu) == 1 and "not measured" in gpu[0] and docsgen.GPU_COMMAND in gpu[0]
    summary = {row[0][:20]: row for row in docsgen._speed_goal_summary(tmp_path)}
    assert " of 8 met: " in summary["latency target met w"][1]  # 2 scales × 2 runtimes × 2 budgets; not the GPU goal
    target = {"measured_ratio": 0.61, "met": False}
    (tmp_path / docsgen.GPU_TARGET).write_text(json.dumps({"target": target}))
    gpu = [line for line in docsgen.speed_goals(tmp_path).splitlines() if line.startswith("| GPU")]
    assert gpu == [f"| {gpu[0].split(' | ')[0][2:]} | 0.610 | **missed** | settled |"]


def test_the_depth_default_table_follows_the_study_report(tmp_path):
    import json

    from studies.depth_default.run import analyse
    from tests.test_depth_default import FAST, _study

    pckh = {("none", 50): [78.0, 79.0, 77.5], ("all", 50): [76.0, 77.0, 75.5]}  # all 2 points worse on every seed
    result = _study(tmp_path / "runs", pckh, FAST)
    assert result == analyse(tmp_path / "runs", [1, 2, 3])
    (tmp_path / "reports/depth_default").mkdir(parents=True)
    (tmp_path / docsgen.DEPTH_DEFAULT).write_text(json.dumps(result))
    table = docsgen.depth_default(tmp_path)
    assert (
        "| 50 % | 78.17 (n=3) | 76.17 (n=3) | −2.00 [−2.00, −2.00] (n=3) | 2.00×, 2.10×, 1.92× | **worse** |" in table
    )
    assert "| 25 % | – | – | – | – | incomplete |" in table
    assert "the default is `prune.depth: none`" in table


def test_the_equal_latency_answer_follows_the_study_report(tmp_path):
    import json

    from studies.equal_latency import report
    from tests.test_equal_latency import fabricated_runs

    assert docsgen.equal_latency(tmp_path).startswith("Not measured yet")  # no report: says so, no error
    assert docsgen.equal_latency_goals(tmp_path) == "Not measured yet.\n"
    results = report.analyse(fabricated_runs())
    payload = {"results": results, "goals": report.goals(results), "winners": report.winners(results)}
    (tmp_path / "reports/benchmarks").mkdir(parents=True)
    (tmp_path / docsgen.EQUAL_LATENCY).write_text(json.dumps(payload))  # seeds become strings, as on disk
    table = docsgen.equal_latency(tmp_path)
    row50 = next(line for line in table.splitlines() if line.startswith("| 2× (50 %)"))
    assert row50.startswith(
        "| 2× (50 %) | 80.00 (n=3) | 79.43 (n=3) | 76.17 (n=3) | 78.97 (n=3) | 78.83 (n=3) | `latency` (n=3): "
        "`recipes/equal_latency/latency-50.yaml` | −0.57 ["
    )
    row25 = next(line for line in table.splitlines() if line.startswith("| 4× (25 %)"))
    assert "| 74.83 (n=3) (1.03× the budget) |" in row25  # macs at 25 %: seed 1 measured above 1.05 × the budget
    # each difference carries the protocol's goal on it: 1 met at 50 %, 2 met at 50 %, 3 missed at 50 %, ...
    assert "| −0.57 [" in row50 and "(n=3): met | +3.27 [" in row50 and "(n=3): **missed** |" in row50
    assert row25.endswith("(n=3): met |")  # goal 4: latency − random at 25 %
    assert row50.count(": met") + row50.count(": **missed**") == 3  # goal 4 is read at 25 % only
    goals = [line for line in docsgen.equal_latency_goals(tmp_path).splitlines() if line.startswith("| 1.")]
    assert goals[0].startswith("| 1. latency − parent ≥ −1.0 at 50 % of the parent's latency (mean) | −0.57 [")
    assert goals[0].endswith("| met |") and goals[1].endswith("| **missed** |")


def test_the_equal_latency_family_table_follows_the_study_report(tmp_path):
    import json

    assert docsgen.equal_latency_family(tmp_path).startswith("Not measured yet")
    (tmp_path / "reports/benchmarks").mkdir(parents=True)
    rows = [{"run": "hg4-latency-25", "parent_pckh": 79.39, "pckh": 75.2, "parent_ort_ms": 1.2, "ort_ms": 0.4,
             "ratio": 4 / 3},
            {"run": "hg5-latency-50", "parent_pckh": 77.41, "pckh": 78.0, "parent_ort_ms": 1.5, "ort_ms": None,
             "ratio": None}]  # fmt: skip
    (tmp_path / docsgen.EQUAL_LATENCY).write_text(json.dumps({"family": rows}))
    lines = docsgen.equal_latency_family(tmp_path).splitlines()
    assert lines[2] == "| hg4 | 25 % | 79.39 | 75.20 | −4.19 | 1.200 → 0.400 | 3.00× | 1.33 |"
    assert lines[3] == "| hg5 | 50 % | 77.41 | 78.00 | +0.59 | not measured | – | – |"


def test_a_missing_report_is_a_one_line_error_naming_it(tmp_path):
    with pytest.raises(HgpruneError, match=r"reports/benchmarks/latency\.json: cannot read"):
        docsgen.latency_table(tmp_path)


def test_recipe_key_rows_cover_every_key_of_the_schema_with_its_default():
    from hgprune.recipe import Recipe, SweepSection

    def leaves(mapping: dict, prefix: str = "") -> dict:
        out = {}
        for key, value in mapping.items():
            if isinstance(value, dict) and key != "part_ratios":
                out.update(leaves(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    import dataclasses

    expected = leaves(Recipe().to_dict() | {"sweep": dataclasses.asdict(SweepSection())})
    rows = {r.path: r for r in docsgen.recipe_key_rows()}
    assert set(expected) <= set(rows)
    for path, value in expected.items():
        assert rows[path].default == docsgen._shown_default(value), path
    # every bound the schema enforces is shown, with the schema's own words
    assert rows["prune.round_to"].bounds == "must be in [1, 1024]"  # settings.PruneSection's Int(1, 1024)
    assert rows["prune.tolerance"].bounds == "must be in (0, 0.5]"
    assert all(r.help for r in rows.values()), [p for p, r in rows.items() if not r.help]


def test_cli_reference_lists_every_flag_of_every_command():
    text = docsgen.cli_reference(ROOT)
    from hgprune.cli import COMMANDS

    for name in COMMANDS:
        parser = build_parser(name)
        sub = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices[name]
        for action in sub._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help", "--debug"):
                    assert f"`{option}`" in text, (name, option)


# ---------------------------------------------------------------------------------------------------------------
# README commands


def _shell_lines(text: str) -> list[str]:
    """Command lines of the README's bash blocks, continuations joined, comments dropped."""
    lines = []
    for lang, body in FENCE.findall(text):
        if lang not in ("bash", "sh"):
            continue
        joined = body.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


# Commands the README shows that no test runs, and why. Every other README command line is run below.
NOT_RUN = {
    "make demo": "installs a virtual environment and trains for minutes: what CI's own `make test` run stands for",
    "make test": "is the test suite itself",
    "source .venv/bin/activate": "changes the calling shell only",
    "pip install torch==2.13.0": "installs packages (the Makefile's install step)",
    "pip install -c constraints.txt -e '.[deploy]'": "installs packages (the Makefile's install step)",
    "hgprune run my_hg2.yaml --set prune.target.kept=0.25": "trains; its recipe and override are checked by --dry-run",
    "hgprune run my_hg2.yaml --resume": "trains; parsed only",
    "hgprune latency calibrate --runtime ort --threads 2 --arch hg8 --N 16 --M 32 --depth 3 --input-size 64": "times "
    "models for minutes on an idle machine; parsed only (tests/latency cover calibration on a fake timer)",
    "hgprune latency runs/my_run --runtime ort --runtime torch --threads 2": "times a run (idle machine); parsed only",
}


def _readme_recipe(tmp_path: Path) -> Path:
    text = README.read_text()
    blocks = [body for lang, body in FENCE.findall(text) if lang == "yaml"]
    assert blocks and "name: my_hg2" in blocks[0]  # the recipe; later blocks are fragments of it
    path = tmp_path / "my_hg2.yaml"
    path.write_text(blocks[0])
    return path


def test_readme_recipe_fragments_load_merged_into_its_recipe(tmp_path):
    import yaml

    from hgprune.recipe import load_recipe

    blocks = [yaml.safe_load(body) for lang, body in FENCE.findall(README.read_text()) if lang == "yaml"]
    assert len(blocks) >= 2
    for fragment in blocks[1:]:
        merged = yaml.safe_load(yaml.safe_dump(blocks[0]))
        for section, values in fragment.items():
            merged.setdefault(section, {}).update(values)
        path = tmp_path / "fragment.yaml"
        path.write_text(yaml.safe_dump(merged))
        recipe = load_recipe(path)
        assert all(getattr(recipe.prune, k) is not None for k in fragment.get("prune", {}))


def test_every_readme_command_parses_with_the_real_parsers():
    lines = _shell_lines(README.read_text())
    hgprune_lines = [line for line in lines if line.startswith("hgprune ")]
    assert len(hgprune_lines) >= 5
    for line in hgprune_lines:
        argv = shlex.split(line)[1:]
        command = argv[0]
        build_parser(command).parse_args(argv)  # raises HgpruneError on any unknown flag or bad value
    unknown = [line for line in lines if not line.startswith("hgprune ") and line not in NOT_RUN]
    assert unknown == [], "list each non-hgprune README command in NOT_RUN with a reason"
    stale = [line for line in NOT_RUN if line not in lines]
    assert stale == []


def test_readme_path_through_export_and_predict_runs(tmp_path, monkeypatch, tiny_model):
    """Every README command not in NOT_RUN, run in a scratch directory with `make demo`'s training replaced by a
    tiny saved model: the recipes dry-run, a model is profiled, the model exports to ONNX, test images are
    generated and the exported model predicts on them."""
    import hgprune

    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    _readme_recipe(tmp_path)
    model_path = tmp_path / "runs/quickstart/final/model.pt"
    model_path.parent.mkdir(parents=True)
    hgprune.save_model(tiny_model, model_path)
    run = [line for line in _shell_lines(README.read_text()) if line.startswith("hgprune ") and line not in NOT_RUN]
    assert any("--dry-run" in line for line in run)
    for line in run:
        argv = [
            str(ROOT / a) if (ROOT / a).is_file() and not (tmp_path / a).exists() else a for a in shlex.split(line)[1:]
        ]
        if argv[0] == "export":
            argv += ["--no-latency"]
        assert cli_main(argv) == 0, line
    assert (tmp_path / "runs/quickstart/final/model.onnx").is_file()
    assert list((tmp_path / "preds").glob("*.json"))


# ---------------------------------------------------------------------------------------------------------------
# links and paths


def _slug(heading: str) -> str:
    heading = re.sub(r"[`*_]", "", heading).strip().lower()
    heading = re.sub(r"[^\w\s-]", "", heading)
    return re.sub(r"\s+", "-", heading)


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(h) for h in re.findall(r"^#+\s+(.*)$", text, re.M)}


def _documents() -> list[Path]:
    return docsgen.pages(ROOT)


@pytest.mark.parametrize("page", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    text = FENCE.sub("", page.read_text())
    broken = []
    for match in LINK.finditer(text):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert broken == []


def test_every_repository_path_the_readme_names_exists():
    text = README.read_text()
    named = set(re.findall(r"`((?:recipes|reports|docs|benchmarks|scripts|hgprune)/[\w./-]+)`", text))
    named |= set(re.findall(r"\b((?:recipes|docs)/[\w./-]+\.(?:yaml|md))", text))
    assert named
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def test_readme_stays_short():
    assert len(README.read_text().splitlines()) <= 200


# ---------------------------------------------------------------------------------------------------------------
# the site


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs not installed (the dev extra)")
def test_docs_site_builds_strictly(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site/recipes/index.html").is_file()


def test_the_equal_latency_answer_shows_single_seed_differences_without_an_interval(tmp_path):
    import json

    from studies.equal_latency import report
    from tests.test_equal_latency import fabricated_runs

    results = report.analyse({1: fabricated_runs()[1]})
    payload = {"results": results, "goals": report.goals(results), "winners": report.winners(results)}
    (tmp_path / "reports/benchmarks").mkdir(parents=True)
    (tmp_path / docsgen.EQUAL_LATENCY).write_text(json.dumps(payload))
    row50 = next(line for line in docsgen.equal_latency(tmp_path).splitlines() if line.startswith("| 2× (50 %)"))
    # seed 1: latency 79.5, parent 80.0, macs 76.0; one seed gives no interval and reads no goal
    assert "| seed 1: −0.50: goal not measured yet | seed 1: +3.50: goal not measured yet |" in row50
    assert "`latency` (n=1)" in row50
