"""The plateau rule of issue 12, as the accuracy study and the sweep's baselines apply it."""

import pytest

from hgprune.errors import HgpruneError
from hgprune.train.plateau import PLATEAU_GAIN, plateau


def _log(tmp_path, values):
    path = tmp_path / "log.csv"
    path.write_text("epoch,lr,pckh\n" + "".join(f"{i + 1},0.001,{v}\n" for i, v in enumerate(values)))
    return path


def test_gain_is_measured_from_the_start_of_the_last_fifth(tmp_path):
    # 10 epochs: the last 20 % starts at epoch 8 (index 7), so the gain is 80.4 - 80.0
    p = plateau(_log(tmp_path, [50, 60, 70, 75, 78, 79, 79.5, 80.0, 80.2, 80.4]))
    assert (p.epochs, p.final) == (10, 80.4)
    assert p.gain_last_20pct == pytest.approx(0.4) and p.at_plateau


def test_still_learning_is_not_a_plateau(tmp_path):
    p = plateau(_log(tmp_path, [50, 60, 70, 75, 78, 79, 79.5, 80.0, 80.4, 80.0 + PLATEAU_GAIN]))
    assert p.gain_last_20pct == pytest.approx(PLATEAU_GAIN) and not p.at_plateau


@pytest.mark.parametrize("text", ["", "epoch,lr,pckh\n", "epoch,loss\n1,0.1\n", "epoch,pckh\n1,abc\n"])
def test_a_bad_log_names_the_file(tmp_path, text):
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(HgpruneError, match="log.csv"):
        plateau(path)


def test_a_log_without_wall_times_is_a_one_line_error_naming_it(tmp_path):
    from hgprune.train.plateau import log_wall_s

    (tmp_path / "log.csv").write_text("epoch,pckh\n1,50.0\n")
    with pytest.raises(HgpruneError, match=r"log\.csv: not a training log with a wall_s column"):
        log_wall_s(tmp_path / "log.csv")
