import pickle
from pathlib import Path

import pytest
import torch

from hgprune import build_model, load_model, save_model
from hgprune.errors import HgpruneError
from hgprune.models.checkpoints import load_checkpoint
from tests.conftest import prune_half, randomize_bn

FIXTURES = ["seed_hg2_N32_M64.pth.tar", "bearpaw_hg1_N16_M32.pth", "seed_hg3_N64_M96.pth.tar"]


def _outputs(model, x):
    with torch.no_grad():
        return torch.stack(model.eval()(x))


@pytest.mark.parametrize("name", FIXTURES)
def test_seed_fixture_reproduces_outputs(shared, name):
    folder = shared / "fixtures" / "seed-checkpoints"
    model = load_model(folder / name)
    io = torch.load(folder / (name.split(".pth")[0] + ".io.pt"), weights_only=True)
    assert not model.training
    diff = (_outputs(model, io["input"]) - io["outputs"]).abs().max().item()
    assert diff < 1e-5


def test_seed_fixture_config_inferred(shared):
    model, info = load_checkpoint(shared / "fixtures/seed-checkpoints/seed_hg3_N64_M96.pth.tar")
    assert (model.config.num_stacks, model.config.N, model.config.M) == (3, 64, 96)
    assert info["source"] == "seed" and info["meta"]["arch"] == "hg3"


def test_round_trip_exact(tmp_path, tiny_model):
    randomize_bn(tiny_model)
    path = tmp_path / "m.pt"
    save_model(tiny_model, path, meta={"note": "x", "step": 3})
    raw = torch.load(path, weights_only=True)
    assert raw["config"]["M"] == 32 and raw["meta"] == {"note": "x", "step": 3}
    loaded = load_model(path)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(_outputs(loaded, x), _outputs(tiny_model, x))


def test_pruned_model_round_trips_from_shapes(tmp_path):
    model = build_model("hg2", N=16, M=32, input_size=64)
    randomize_bn(model)
    prune_half(model)
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths != [
        m.out_channels for m in build_model("hg2", N=16, M=32).modules() if isinstance(m, torch.nn.Conv2d)
    ]
    path = tmp_path / "pruned.pt"
    save_model(model, path)
    loaded = load_model(path)
    assert [m.out_channels for m in loaded.modules() if isinstance(m, torch.nn.Conv2d)] == widths
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(_outputs(loaded, x), _outputs(model, x), atol=1e-6)


def test_plain_state_dict_with_module_prefix(tmp_path, tiny_model):
    path = tmp_path / "plain.pth"
    torch.save({f"module.{k}": v for k, v in tiny_model.state_dict().items()}, path)
    loaded, info = load_checkpoint(path)
    assert info["source"] == "state_dict" and loaded.config.N == 16 and loaded.config.M == 32


class _RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsCode()
    payload.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": payload}, path)
    with pytest.raises(HgpruneError, match="refused to load.*could execute code"):
        load_model(path)
    assert not marker.exists()


def test_list_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(HgpruneError, match="not a checkpoint .found a list"):
        load_model(path)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a PyTorch checkpoint|truncated"),
        (bytes(range(256)) * 4, "not a PyTorch checkpoint"),
        (pickle.dumps([1, 2, 3], protocol=2), "truncated or corrupt"),
    ],
)
def test_garbage_files_are_one_line_errors(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(HgpruneError, match=match) as err:
        load_model(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_checkpoint(tmp_path, tiny_model):
    path = tmp_path / "m.pt"
    save_model(tiny_model, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(HgpruneError, match="truncated or corrupt"):
        load_model(path)


def test_unknown_keys_and_arch_mismatch(tmp_path, tiny_model):
    sd = dict(tiny_model.state_dict())
    sd["extra.weight"] = torch.zeros(3)
    path = tmp_path / "unknown.pth"
    torch.save(sd, path)
    with pytest.raises(HgpruneError, match="unknown key.*extra.weight"):
        load_model(path)
    good = tmp_path / "good.pt"
    save_model(tiny_model, good)
    with pytest.raises(HgpruneError, match="recipe expects hg2"):
        load_model(good, expect=build_model("hg2", N=16, M=32).config)


def test_seed_arch_field_must_agree_with_tensors(tmp_path, tiny_model):
    path = tmp_path / "seed.pth.tar"
    torch.save({"epoch": 1, "arch": "hg4", "state_dict": tiny_model.state_dict(), "best_acc": 0.1}, path)
    with pytest.raises(HgpruneError, match="arch='hg4'.*hg1"):
        load_model(path)


def test_inconsistent_widths_rejected(tmp_path, tiny_model):
    sd = dict(tiny_model.state_dict())
    sd["layer1.0.conv1.weight"] = sd["layer1.0.conv1.weight"][:3]
    sd["layer1.0.conv1.bias"] = sd["layer1.0.conv1.bias"][:3]
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(HgpruneError, match="inconsistent|do not fit"):
        load_model(path)
