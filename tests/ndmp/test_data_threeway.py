"""Three-way NDMP with the real ndmjob: the data service on one pyndmpd, the
mover and tape on another, in two network namespaces joined by a veth pair
(as two hosts would be).  Level 0 and level 1 backups of a qtree of a snapfs
volume with an index and a level 0 of the whole volume; the listing (-t),
restore of the tree and of single files by direct access (NOTIFY_DATA_READ,
the DMA's MOVER_READ, per file); the images read by pyrestore and by the real
restore; tshark's dissector over the NDMP sessions of the backup: no malformed packet.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import console_script
from pyndmpd_process import NDMJOB
from test_data import image_size, make_tree, recover_read, same_tree
from test_data_filer import BIN, snapfs

from tapelib import Shelf, TapeError

pytestmark = pytest.mark.fuse

_DATA_IP, _TAPE_IP = "10.77.0.1", "10.77.0.2"


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=check)


def _image(shelf: Shelf, to: Path) -> Path:
    """The first tape file of drive 0's cartridge, written to ``to``."""
    drive = shelf.open_drive(0)
    try:
        drive.rewind()
        with to.open("wb") as out:
            try:
                while record := drive.read(256 * 1024):
                    out.write(record)
            except TapeError:
                pass
    finally:
        drive.close()
    return to


def _read_by_both_restores(image: Path, *names: str) -> None:
    for tool in ("/sbin/restore", str(BIN / "pyrestore")):
        r = subprocess.run([tool, "-t", "-f", str(image)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and all(f"./{n}" in r.stdout for n in names), (tool, r.stdout, r.stderr)


def test_three_way_backup_restore_and_dar_between_two_hosts(tmp_path: Path) -> None:
    shelf = Shelf.create(tmp_path / "shelf", drives=1, slots=2)
    shelf.new_cartridge("T3W", capacity=32 * 1024 * 1024)
    shelf.load("T3W", drive=0)
    nst0 = str(shelf.device_path(0, rewind=False))
    from snapfs import Volume
    from snapfs.cli.main import parse_size

    voldir, mnt = tmp_path / "vol", tmp_path / "mnt"
    mnt.mkdir()
    Volume.create(voldir, parse_size("64M"), 200, name="threeway", block_size=4096).close()
    snapfs("mount", voldir, mnt)
    snapfs("qtree", "create", mnt, "qt")
    (mnt / "outside.txt").write_text("not in the qtree\n")
    src = mnt / "qt"
    make_tree(src)
    time.sleep(1.1)  # dump compares whole seconds: the level 1 must not take these files for new
    tag = f"{os.getpid() % 100000}"
    data_ns, tape_ns = f"ndmpD{tag}", f"ndmpT{tag}"
    veth_d, veth_t = f"vd{tag}", f"vt{tag}"
    servers: list[subprocess.Popen] = []
    capture = tmp_path / "backup.pcapng"
    try:
        _sh("ip", "netns", "add", data_ns)
        _sh("ip", "netns", "add", tape_ns)
        _sh("ip", "link", "add", veth_d, "type", "veth", "peer", "name", veth_t)
        _sh("ip", "link", "set", veth_d, "netns", data_ns)
        _sh("ip", "link", "set", veth_t, "netns", tape_ns)
        for ns, dev, ip in ((data_ns, veth_d, _DATA_IP), (tape_ns, veth_t, _TAPE_IP)):
            _sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _sh("ip", "-n", ns, "link", "set", dev, "up")
            _sh("ip", "-n", ns, "link", "set", "lo", "up")

        def start(ns: str, ip: str, log: Path) -> None:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, console_script("pyndmpd"), "--foreground",
                                     "--listen", f"{ip}:10000", "--shelf", str(shelf.path),
                                     "--dumpdates", str(tmp_path / f"dumpdates-{ns}"), "--volume", str(tmp_path)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("w"))
            servers.append(proc)

        start(data_ns, _DATA_IP, tmp_path / "data.log")
        start(tape_ns, _TAPE_IP, tmp_path / "tape.log")
        dumpcap = subprocess.Popen(["ip", "netns", "exec", data_ns, "dumpcap", "-i", "any", "-f", "tcp port 10000",
                                    "-w", str(capture), "-q"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=(tmp_path / "dumpcap.log").open("w"))
        for _ in range(200):
            if all("serving" in (tmp_path / n).read_text() for n in ("data.log", "tape.log")) and \
                    "File:" in (tmp_path / "dumpcap.log").read_text():
                break
            subprocess.run(["sleep", "0.05"])

        def ndmjob(*args: str) -> str:
            run = subprocess.run(["ip", "netns", "exec", data_ns, "timeout", "60", NDMJOB, args[0],
                                  "-D", f"{_DATA_IP}:10000/4n", "-T", f"{_TAPE_IP}:10000/4n", "-f", nst0,
                                  "-B", "dump", *args[1:], "-v"],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
            out = run.stdout + run.stderr
            assert 'SESS "Operation ended OKAY"' in out and "had problems" not in out, out
            return out

        idx = tmp_path / "idx"
        ndmjob("-c", "-C", str(src), "-E", "LEVEL=0", "-I", str(idx))
        subprocess.run(["sleep", "0.3"])
        dumpcap.terminate()
        dumpcap.wait(10)
        # the data went from the data host to the tape host's mover over TCP
        data_log, tape_log = (tmp_path / "data.log").read_text(), (tmp_path / "tape.log").read_text()
        assert f"mover: data connection from {_DATA_IP}" in tape_log, tape_log
        assert "data halted: SUCCESSFUL" in data_log, data_log
        l0 = _image(shelf, tmp_path / "l0.img")
        _read_by_both_restores(l0, "sub/zz.txt", "big2")
        # -t: the data host reads the image from the tape host's mover
        toc = tmp_path / "toc"
        ndmjob("-t", "-I", str(toc))
        names = {line.split()[2] for line in idx.read_text().splitlines() if line.startswith("DHd ")}
        assert {line.split()[2] for line in toc.read_text().splitlines() if line.startswith("DHd ")} == names
        assert "outside.txt" not in names and "zz.txt" in names, names
        whole = tmp_path / "whole"
        whole.mkdir()
        ndmjob("-x", "-C", str(whole), "-J", str(idx))
        same_tree(src, whole)
        one = tmp_path / "one"
        one.mkdir()
        # DAR of three files: NOTIFY_DATA_READ for the front, then for each file's records (the DMA's
        # MOVER_READ each time), past the two big files between them
        out = ndmjob("-x", "-C", str(one), "-J", str(idx), "hello.txt", "sub/blob.bin", "sub/zz.txt")
        assert (one / "sub" / "zz.txt").read_text() == "wanted\n"
        assert (one / "hello.txt").read_text() == "hello\n"
        assert (one / "sub" / "blob.bin").read_bytes() == (src / "sub" / "blob.bin").read_bytes()
        assert not (one / "big1").exists()
        read, ranges = recover_read(out)
        assert ranges >= 4 and read < 400_000, (read, ranges, image_size(idx))
        assert int(re.findall(r"MOVER: read \d+KB record (\d+)", out)[-1]) * 10240 < image_size(idx) / 10, out
        # the other way round: the data service listens, the tape host's mover connects; the whole volume
        idx2 = tmp_path / "idx2"
        ndmjob("-c", "-o", "swap-connect", "-C", str(mnt), "-E", "LEVEL=0", "-E", "UPDATE=n", "-I", str(idx2))
        _read_by_both_restores(_image(shelf, tmp_path / "vol.img"), "outside.txt", "qt/sub/zz.txt")
        swapped = tmp_path / "swapped"
        swapped.mkdir()
        ndmjob("-x", "-o", "swap-connect", "-C", str(swapped), "-J", str(idx2), "hi.txt=qt/hello.txt")
        assert (swapped / "hi.txt").read_text() == "hello\n"
        assert f"data: connection from {_TAPE_IP}" in (tmp_path / "data.log").read_text()
        # level 1 of the qtree: what changed since its level 0; both levels rebuild today's tree
        (src / "hello.txt").write_text("changed\n")
        (src / "new.txt").write_text("new\n")
        idx1 = tmp_path / "idx1"
        ndmjob("-c", "-C", str(src), "-E", "LEVEL=1", "-I", str(idx1))
        names1 = {line.split()[2] for line in idx1.read_text().splitlines() if line.startswith("DHd ")}
        assert {"new.txt", "hello.txt"} <= names1 and "big1" not in names1, names1
        l1 = _image(shelf, tmp_path / "l1.img")
        _read_by_both_restores(l1, "new.txt")
        rebuilt = tmp_path / "rebuilt"
        rebuilt.mkdir()
        for img in (l0, l1):
            r = subprocess.run(["/sbin/restore", "-r", "-y", "-f", str(img)], cwd=rebuilt, capture_output=True,
                               text=True, timeout=60, env=dict(os.environ, TMPDIR=str(tmp_path)))
            assert r.returncode == 0, r.stdout + r.stderr
        (rebuilt / "restoresymtable").unlink()
        same_tree(src, rebuilt)
    finally:
        for proc in servers:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        _sh("ip", "netns", "del", data_ns, check=False)
        _sh("ip", "netns", "del", tape_ns, check=False)
        subprocess.run([str(BIN / "snapfs"), "unmount", str(mnt)], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-u", "-z", str(mnt)], capture_output=True)

    frames = _sh("tshark", "-r", str(capture), "-T", "fields", "-e", "_ws.col.Info").stdout
    names = {" ".join(line.split()[:2]) for line in frames.splitlines()}
    for expected in ("DATA_START_BACKUP Request", "DATA_START_BACKUP Reply", "DATA_CONNECT Reply",
                     "DATA_GET_STATE Reply", "DATA_GET_ENV Reply", "FH_ADD_DIR Request", "FH_ADD_NODE Request",
                     "NOTIFY_DATA_HALTED Request", "MOVER_LISTEN Reply", "NOTIFY_MOVER_HALTED Request"):
        assert expected in names, (expected, sorted(names))
    bad = _sh("tshark", "-r", str(capture), "-Y", "_ws.malformed || _ws.expert.severity >= error").stdout
    assert bad == "", bad
