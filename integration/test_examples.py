"""The examples and ``bpfobj run``, run as a user would, against real processes.

* examples/execsnoop.py (ring buffer): execs of a uniquely named binary by this process show
  up with their pid, parent pid (this process, read through CO-RE from task_struct), uid,
  comm and path; ``--uid`` filters in the kernel (.rodata);
* examples/opensnoop.py (perf buffer): this process's successful and failed openat()s show up
  with their fd / errno and path; ``--failed`` filters in the kernel;
* examples/xdp_count.py: a veth pair in a new netns, XDP on the host end: exactly the pings
  and UDP datagrams sent from the netns are counted, every ping is answered (XDP_PASS), and
  the netns and interfaces are gone afterwards;
* ``bpfobj run`` on the execsnoop object: events decoded through the BTF struct named after
  the ring buffer map, ``--set`` reaches .rodata, ``--event-type`` picks a type.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    try:
        subprocess.run(["bash", str(EXAMPLES / "build.sh")], check=True, capture_output=True,
                       timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"examples/build.sh failed: {exc}")


class Tool:
    """A tool running in the background; its stdout lines are collected."""

    def __init__(self, cmd: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=ROOT, env=env)
        self.lines: list[str] = []
        self._buf = b""

    def read_line(self, timeout: float) -> str | None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode()

    def wait_attached(self, timeout: float = 60) -> str:
        line = self.read_line(timeout)
        if line is None:
            self.proc.kill()
            _, err = self.proc.communicate()
            pytest.fail(f"{self.proc.args!r} did not start: {err.decode()[-2000:]}")
        return line

    def finish(self, timeout: float = 60) -> tuple[list[str], str]:
        out, err = self.proc.communicate(timeout=timeout)
        text = (self._buf + out).decode()
        assert self.proc.returncode == 0, err.decode()[-2000:]
        return [line for line in text.splitlines() if line], err.decode()


def unique_binary(tmp_path: Path) -> Path:
    """A copy of /bin/true with a name no other process uses."""
    exe = tmp_path / f"bpfobj-t{uuid.uuid4().hex[:8]}"
    shutil.copy("/bin/true", exe)
    exe.chmod(0o755)
    return exe


def run_it(exe: Path, times: int) -> list[int]:
    pids = []
    for _ in range(times):
        p = subprocess.Popen([str(exe)])
        pids.append(p.pid)
        assert p.wait() == 0
    return pids


def events(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_execsnoop(tmp_path: Path) -> None:
    exe = unique_binary(tmp_path)
    tool = Tool([sys.executable, str(EXAMPLES / "execsnoop.py"), "--json", "--duration", "4"])
    assert json.loads(tool.wait_attached()) == {"attached": True}
    pids = run_it(exe, 3)
    lines, err = tool.finish()
    mine = [e for e in events(lines) if e.get("filename") == str(exe)]
    assert [e["pid"] for e in mine] == pids
    for e in mine:
        assert e["ppid"] == os.getpid()  # BPF_CORE_READ(task, real_parent, tgid)
        assert e["uid"] == os.getuid()
        assert e["comm"] == exe.name[:15]
    assert "execs seen" in err


def test_execsnoop_uid_filter(tmp_path: Path) -> None:
    exe = unique_binary(tmp_path)
    tool = Tool([sys.executable, str(EXAMPLES / "execsnoop.py"), "--json", "--duration", "2",
                 "--uid", "54321"])
    tool.wait_attached()
    run_it(exe, 2)
    lines, _ = tool.finish()
    assert all(e.get("uid") == 54321 for e in events(lines) if "uid" in e)
    assert not [e for e in events(lines) if e.get("filename") == str(exe)]


def test_opensnoop(tmp_path: Path) -> None:
    present = tmp_path / f"present-{uuid.uuid4().hex[:8]}"
    present.write_text("x")
    missing = tmp_path / f"missing-{uuid.uuid4().hex[:8]}"
    tool = Tool([sys.executable, str(EXAMPLES / "opensnoop.py"), "--json", "--duration", "3",
                 "--pid", str(os.getpid())])
    assert json.loads(tool.wait_attached()) == {"attached": True}
    fd = os.open(present, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(FileNotFoundError):
        os.open(missing, os.O_RDONLY | os.O_CLOEXEC)
    lines, _ = tool.finish()
    got = {e["path"]: e for e in events(lines) if "path" in e}
    assert set(e["pid"] for e in events(lines) if "pid" in e) == {os.getpid()}
    assert got[str(present)]["fd"] == fd and got[str(present)]["errno"] == 0
    assert got[str(missing)]["fd"] == -1 and got[str(missing)]["errno"] == 2
    assert got[str(missing)]["flags"] & os.O_CLOEXEC


def test_opensnoop_failed_only(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_text("x")
    tool = Tool([sys.executable, str(EXAMPLES / "opensnoop.py"), "--json", "--duration", "2",
                 "--pid", str(os.getpid()), "--failed"])
    tool.wait_attached()
    os.close(os.open(present, os.O_RDONLY))
    with pytest.raises(FileNotFoundError):
        os.open(tmp_path / "missing", os.O_RDONLY)
    lines, _ = tool.finish()
    paths = [e["path"] for e in events(lines) if "path" in e]
    assert str(tmp_path / "missing") in paths and str(present) not in paths


def test_xdp_count() -> None:
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (ip) is not installed")
    proc = subprocess.run([sys.executable, str(EXAMPLES / "xdp_count.py"), "--packets", "20",
                           "--json"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["replies"] == 20
    assert doc["counts"]["icmp"]["packets"] == 20
    assert doc["counts"]["icmp"]["bytes"] == 20 * (14 + 20 + 8 + 10)  # eth, ip, icmp, payload
    assert doc["counts"]["udp"]["packets"] == 20
    assert doc["counts"]["udp"]["bytes"] == 20 * (14 + 20 + 8 + 64)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert doc["netns"] not in netns
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert doc["interface"] not in links


def test_bpfobj_run(tmp_path: Path) -> None:
    exe = unique_binary(tmp_path)
    obj = EXAMPLES / "build" / "execsnoop.bpf.o"
    tool = Tool([sys.executable, "-m", "bpfobj", "run", str(obj), "--json", "--duration", "3"])
    assert tool.proc.stderr is not None
    line = tool.proc.stderr.readline().decode()
    assert line.startswith("# attached 1 program(s); reading 1 ring buffer(s)"), line
    pids = run_it(exe, 2)
    lines, err = tool.finish()
    mine = [e for e in events(lines) if e["event"].get("filename") == str(exe)]
    assert [e["map"] for e in mine] == ["events", "events"]
    assert [e["event"]["pid"] for e in mine] == pids
    assert mine[0]["event"]["comm"] == exe.name[:15]
    assert "# events: events:" in err


def test_bpfobj_run_set_and_event_type(tmp_path: Path) -> None:
    exe = unique_binary(tmp_path)
    obj = EXAMPLES / "build" / "execsnoop.bpf.o"
    tool = Tool([sys.executable, "-m", "bpfobj", "run", str(obj), "--json", "--duration", "2",
                 "--set", f"target_uid={os.getuid()}", "--event-type", "events=event"])
    assert tool.proc.stderr is not None
    tool.proc.stderr.readline()
    run_it(exe, 1)
    lines, _ = tool.finish()
    assert [e for e in events(lines) if e["event"].get("filename") == str(exe)]
    assert all(e["event"]["uid"] == os.getuid() for e in events(lines))
    bad = subprocess.run([sys.executable, "-m", "bpfobj", "run", str(obj), "--duration", "0",
                          "--event-type", "nope"], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert bad.returncode == 1 and "nope" in bad.stderr
