import json
import subprocess
import sys

import pytest
import torch

from hgprune import __version__, load_model, save_model
from hgprune.cli import COMMANDS, main
from tests.conftest import ROOT
from tests.models.test_hourglass import SEED_PARAMS


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"hgprune {__version__}"


@pytest.mark.parametrize(
    "argv, match",
    [
        (["frobnicate"], "invalid choice"),
        (["profile", "--arch", "hg1", "--bogus"], "unrecognized arguments: --bogus"),
        (["profile", "--arch", "hg1", "--input-size", "100", "--no-latency"], "--input-size"),
        (["profile"], "no model"),
        (["profile", "missing.pt"], "missing.pt: no such file"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys, argv, match):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hgprune: error:") and match in err and err.count("\n") == 1


def test_conflicting_flags_and_unwritable_output(capsys, tmp_path, tiny_model):
    checkpoint = tmp_path / "m.pt"
    save_model(tiny_model, checkpoint)
    assert main(["profile", str(checkpoint), "--arch", "hg1", "--no-latency"]) == 2
    assert "either a checkpoint or --arch, not both" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    recipe = ROOT / "tests" / "recipes" / "tiny.yaml"
    assert main(["run", str(recipe), "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert "output directory is not writable" in err and err.count("\n") == 1
    assert main(["convert", str(checkpoint), str(blocker / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hgprune: error:")


def test_debug_shows_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "hgprune", "profile", "missing.pt", "--debug"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.parametrize("arch", sorted(SEED_PARAMS))
def test_profile_json_reports_exact_params(capsys, arch):
    # 64 px: the parameter count does not depend on the input size, and both MACs counters trace the same graph at
    # any size (hg8's relative difference is 0.43 % at 64 and at 256 px); a quarter of the side halves the test's time
    assert main(["profile", "--arch", arch, "--no-latency", "--json", "--input-size", "64"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == SEED_PARAMS[arch]
    assert report["macs_counters_rel_diff"] < 0.01
    assert sum(p["params"] for p in report["parts"].values()) == SEED_PARAMS[arch]


def test_convert_seed_checkpoint(shared, tmp_path, capsys):
    src = shared / "fixtures/seed-checkpoints/seed_hg2_N32_M64.pth.tar"
    dst = tmp_path / "hg2.pt"
    assert main(["convert", str(src), str(dst)]) == 0
    raw = torch.load(dst, weights_only=True)
    assert raw["format"] == "hgprune-checkpoint" and raw["meta"]["source_format"] == "seed"
    assert raw["config"]["num_stacks"] == 2 and not any(k.startswith("module.") for k in raw["state_dict"])
    assert main(["convert", str(src), str(dst)]) == 2  # refuses to overwrite
    assert "--force" in capsys.readouterr().err


def test_convert_round_trip_keeps_outputs(tmp_path, tiny_model):
    src = tmp_path / "plain.pth"
    torch.save(tiny_model.state_dict(), src)
    dst = tmp_path / "out.pt"
    assert main(["convert", str(src), str(dst), "--input-size", "64"]) == 0
    loaded = load_model(dst)
    assert loaded.config.input_size == 64
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(torch.stack(loaded(x)), torch.stack(tiny_model.eval()(x)))
    save_model(loaded, tmp_path / "again.pt")
