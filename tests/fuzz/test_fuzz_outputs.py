"""Output targets that are not plain files: the atomic writer never replaces a device node, a
FIFO or a symlink by surprise (issue 9: ``--out /dev/full`` turned the machine's /dev/full into a
3,762-byte text file). Devices are clones made with ``mknod`` inside the test folder (skipped
where that is not permitted), never the system's own /dev entries."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from llmsim.errors import OutputError
from llmsim.io import write_json, write_text

ESTIMATE = ["estimate", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--batch", "2", "--prompt",
            "64", "--output", "8", "--format", "json"]


def _char_device(path, minor: int):
    """A clone of /dev/null (1, 3) or /dev/full (1, 7) at ``path``."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a device node here ({exc.strerror})")
    return path


def _is_char_device(path) -> bool:
    return stat.S_ISCHR(os.lstat(path).st_mode)


def test_a_device_is_written_in_place_never_replaced(tmp_path):
    null = _char_device(tmp_path / "null", 3)
    write_text(null, "discarded\n")
    write_json(null, {"a": 1})
    assert _is_char_device(null)
    assert sorted(os.listdir(tmp_path)) == ["null"]  # no temporary file left beside it


def test_a_full_device_fails_with_one_line_and_stays_a_device(tmp_path):
    full = _char_device(tmp_path / "full", 7)
    with pytest.raises(OutputError, match=r"cannot write .*full: No space left on device$"):
        write_text(full, "x" * 100_000)
    assert _is_char_device(full)


def test_cli_out_onto_devices(cli, tmp_path):
    null = _char_device(tmp_path / "null", 3)
    res = cli(*ESTIMATE, "--out", str(null))
    assert res.code == 0, res.err
    full = _char_device(tmp_path / "full", 7)
    res = cli(*ESTIMATE, "--out", str(full))
    assert res.code == 2 and res.err.count("\n") == 1 and res.err.startswith("error: ")
    assert "No space left on device" in res.err
    assert _is_char_device(null) and _is_char_device(full)


def test_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_text(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == ["through the pipe\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_is_followed_and_kept(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "made" / "by-the-write.json")
    (tmp_path / "made").mkdir()
    write_text(dangling, "created")
    assert dangling.is_symlink() and (tmp_path / "made" / "by-the-write.json").read_text() == \
        "created"


def test_cli_out_through_a_symlink_keeps_the_link(cli, tmp_path):
    target = tmp_path / "result.json"
    target.write_text("{}")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    assert cli(*ESTIMATE, "--out", str(link)).code == 0
    assert link.is_symlink() and '"ttft_s"' in target.read_text()


@pytest.mark.parametrize("name", ["x" * 256, "d" * 300 + "/f.json", "/".join(["d" * 250] * 20)])
def test_names_too_long_are_one_line_output_errors(tmp_path, name):
    with pytest.raises(OutputError, match="too long") as info:
        write_text(tmp_path / name, "x")
    assert "\n" not in str(info.value)


def test_a_long_but_legal_name_is_written(tmp_path):
    target = tmp_path / ("n" * 250)
    write_text(target, "ok")
    assert target.read_text() == "ok"


@pytest.mark.parametrize("make", ["folder", "symlink to folder", "socket"])
def test_targets_that_cannot_be_a_file_are_refused(tmp_path, make):
    target = tmp_path / "t"
    if make == "folder":
        target.mkdir()
    elif make == "symlink to folder":
        (tmp_path / "dir").mkdir()
        target.symlink_to(tmp_path / "dir")
    else:
        import socket

        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.bind(str(target))
        except OSError as exc:
            pytest.skip(f"cannot bind a unix socket here ({exc.strerror})")
        sock.close()
    with pytest.raises(OutputError) as info:
        write_text(target, "x")
    assert "\n" not in str(info.value)
    assert not target.is_file()
