import errno

import pytest

from hgprune.errors import HgpruneError
from hgprune.fsutil import atomic_open, atomic_write_text


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "f.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["f.txt"]


def test_failure_mid_write_keeps_previous_version(tmp_path):
    path = tmp_path / "metrics.csv"
    atomic_write_text(path, "previous")
    with pytest.raises(HgpruneError, match="write failed .No space left on device.; any previous version is intact"):
        with atomic_open(path, "w") as handle:
            handle.write("half of the new")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert path.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_unwritable_parent_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HgpruneError, match="cannot write here"):
        atomic_write_text(blocker / "x.txt", "data")
