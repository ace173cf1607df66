import json
import os
import subprocess
import sys

import pytest

from hgprune.errors import HgpruneError
from hgprune.rundir import RunDir


def test_second_writer_is_refused(tmp_path):
    first = RunDir(tmp_path / "run")
    first.prepare()
    first.acquire_lock()
    second = RunDir(tmp_path / "run")
    with pytest.raises(HgpruneError, match=f"another hgprune run \\(pid {os.getpid()}"):
        second.acquire_lock()
    first.release_lock()
    assert not first.lock_path.exists()
    second.acquire_lock()  # free again once released
    assert json.loads(second.lock_path.read_text())["pid"] == os.getpid()


def test_stale_lock_of_dead_process_is_replaced(tmp_path, capsys):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    run = RunDir(tmp_path / "run")
    run.prepare()
    import socket

    run.lock_path.write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname()}))
    run.acquire_lock()
    assert json.loads(run.lock_path.read_text())["pid"] == os.getpid()
    assert f"stale lock of finished process {dead_pid}" in capsys.readouterr().out


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(HgpruneError, match="output directory is not writable"):
        RunDir(blocker / "run").prepare()


def test_completed_steps_ignores_strays(tmp_path):
    run = RunDir(tmp_path)
    run.checkpoints.mkdir()
    for name in ["step_000.pt", "step_002.pt", "step_x.pt", ".step_003.pt.abc.tmp"]:
        (run.checkpoints / name).write_bytes(b"")
    assert run.completed_steps() == [0, 2]


def test_state_updates_merge(tmp_path):
    run = RunDir(tmp_path)
    run.write_state(status="running", command="hgprune run r.yaml")
    run.write_state(status="finished")
    assert run.read_state() == {"status": "finished", "command": "hgprune run r.yaml"}
    run.state.write_text("{broken")
    with pytest.raises(HgpruneError, match="corrupt run state"):
        run.read_state()
