"""The wire checked by a real dissector: tshark decodes a capture of
ndmjob's sessions with pyndmpd and finds no malformed packet.

tshark's NDMP dissector only decodes port 10000 (decode-as to another
port decodes nothing in Wireshark 4.0), so the server, the capture and
ndmjob run in a network namespace of their own, where port 10000 is free.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import console_script
from pyndmpd_process import NDMJOB

_SCRIPT = r"""
set -e
ip link set lo up
dumpcap -i lo -f "tcp port 10000" -w "$CAP" -q 2> "$WORK/dumpcap.log" &
CAPTURE=$!
for i in $(seq 200); do grep -q "File:" "$WORK/dumpcap.log" 2>/dev/null && break; sleep 0.05; done
"$PYNDMPD" --shelf "$SHELF" --volume "$WORK" --foreground 2> "$WORK/server.log" &
SERVER=$!
for i in $(seq 200); do grep -q "serving" "$WORK/server.log" 2>/dev/null && break; sleep 0.05; done
A=127.0.0.1:10000/4n
timeout 60 "$NDMJOB" -q -D $A -T $A -v > "$WORK/query.out" 2>&1
timeout 60 "$NDMJOB" -o test-mover -T $A -f "$SHELF/nst0" > "$WORK/mover.out" 2>&1
timeout 60 "$NDMJOB" -o test-tape -T $A -f "$SHELF/nst0" > "$WORK/tape.out" 2>&1 || true
sleep 0.3
kill -INT $CAPTURE; wait $CAPTURE || true
kill $SERVER; wait $SERVER || true
"""


def test_tshark_decodes_our_sessions_without_malformed_packets(tmp_path: Path, nst0: str) -> None:
    shelf = Path(nst0).parent
    capture = tmp_path / "ndmp.pcapng"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CAP": str(capture), "WORK": str(tmp_path),
           "SHELF": str(shelf), "PYNDMPD": console_script("pyndmpd"), "NDMJOB": NDMJOB}
    run = subprocess.run(["unshare", "--net", "bash", "-c", _SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "FINAL test-mover Passed -- pass=100" in (tmp_path / "mover.out").read_text()
    assert "product    pyndmpd" in (tmp_path / "query.out").read_text()
    assert "serving NDMP v4 on 0.0.0.0 port 10000" in (tmp_path / "server.log").read_text()  # without --listen

    frames = subprocess.run(["tshark", "-r", str(capture), "-T", "fields", "-e", "frame.number",
                             "-e", "_ws.col.Info"], capture_output=True, text=True, check=True).stdout
    decoded = [line for line in frames.splitlines() if "Request" in line or "Reply" in line]
    assert len(decoded) > 250, frames
    names = {" ".join(line.split("\t")[1].split()[:2]) for line in decoded}
    for expected in ("NOTIFY_CONNECTED Request", "CONNECT_CLIENT_AUTH Reply", "CONFIG_GET_HOST_INFO Reply",
                     "CONFIG_GET_SERVER_INFO Reply", "CONFIG_GET_BUTYPE_INFO Reply",
                     "CONFIG_GET_FS_INFO Reply", "CONFIG_GET_TAPE_INFO Reply", "TAPE_GET_STATE Reply",
                     "MOVER_LISTEN Reply", "MOVER_GET_STATE Reply", "NOTIFY_MOVER_HALTED Request",
                     "TAPE_WRITE Reply"):
        assert expected in names, (expected, sorted(names))
    bad = subprocess.run(["tshark", "-r", str(capture), "-Y", "_ws.malformed || _ws.expert.severity >= error"],
                         capture_output=True, text=True, check=True).stdout
    assert bad == "", bad
