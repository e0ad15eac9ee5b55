"""Real Samba (Debian's smbd) exporting a folder -- a snapfs mount -- for the tests.

smbd runs with its own smb.conf, private, lock and state folders under a test
folder, ``vfs objects = acl_xattr streams_xattr`` and ``store dos attributes =
yes``, and a test-private passdb holding root.  It listens on 127.0.0.1 port
445 of a network namespace of its own (``unshare -n``), a port spare by
construction; smbclient and smbcacls join that namespace (nsenter), since
smbcacls has no option for another port.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "root%snapfs-test"


def smb_conf(d: Path, share: Path) -> Path:
    """Write the smb.conf (and its folders) of a Samba exporting ``share`` as [share]; a folder ``d``
    used before keeps its state: the same server (its machine SID, its passdb) serving another share."""
    for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    conf = d / "smb.conf"
    conf.write_text(f"""[global]
  netbios name = SNAPTEST
  workgroup = WORKGROUP
  server role = standalone server
  interfaces = 127.0.0.1
  bind interfaces only = yes
  smb ports = 445
  private dir = {d}/private
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/pid
  ncalrpc dir = {d}/ncalrpc
  log file = {d}/log.smbd
  passdb backend = tdbsam:{d}/private/passdb.tdb
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
  server min protocol = SMB2
[share]
  path = {share}
  read only = no
  vfs objects = acl_xattr streams_xattr
  store dos attributes = yes
""")
    return conf


class Samba:
    """A running smbd: run smbclient/smbcacls against its [share]."""

    def __init__(self, conf: Path, proc: subprocess.Popen) -> None:
        self.conf, self.proc = conf, proc

    def run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["nsenter", "-t", str(self.proc.pid), "-n", tool, "-s", str(self.conf), "-U", USER,
               "//127.0.0.1/share", *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, f"{tool} {args}: {r.stdout}{r.stderr}"
        return r

    def client(self, commands: str, check: bool = True) -> str:
        return self.run("smbclient", "-c", commands, check=check).stdout


@contextmanager
def serving(share: Path, d: Path) -> Iterator[Samba]:
    """smbd exporting ``share`` (its files under ``d``, see :func:`smb_conf`), up when entered, ended on exit."""
    conf = smb_conf(d, share)
    subprocess.run(["smbpasswd", "-c", str(conf), "-a", "-s", "root"], input="snapfs-test\nsnapfs-test\n",
                   capture_output=True, text=True, check=True, timeout=30)
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", f"ip link set lo up && exec smbd -F --no-process-group"
                             f" -s {conf} --debug-stdout"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # smbd ends its process group on exit: its own
    s = Samba(conf, proc)
    try:
        deadline = time.monotonic() + 20
        while s.run("smbclient", "-c", "ls", check=False).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "smbd did not come up"
            time.sleep(0.1)
        yield s
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """End smbd and the children it forked (by their ids)."""
    try:
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        kids = []
    proc.terminate()
    proc.wait(timeout=20)
    for k in kids:
        try:
            os.kill(int(k), 15)
        except ProcessLookupError:
            pass


def aces(text: str) -> list[str]:
    """The ACL: lines of smbcacls output."""
    return [line for line in text.splitlines() if line.startswith("ACL:")]


def acl_arg(n: int) -> str:
    """An smbcacls --set argument of ``n`` allow-READ ACEs for distinct SIDs."""
    return ",".join(f"ACL:S-1-5-21-1-2-3-{1000 + i}:ALLOWED/0x0/READ" for i in range(n))
