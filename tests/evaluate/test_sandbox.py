"""The sandbox contains hostile programs for real: each case below runs in an actual
subprocess, is reported for what it is, leaves nothing behind, and the next run still
works. The red-team suite (test_sandbox_attacks.py) covers every mode and both users;
this file checks the sandbox's own contract in the mode ember picks here, plus the
refusal of weak modes and the clean-up of what a program made unreadable."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

from ember.evaluate import sandbox
from ember.evaluate.sandbox import SandboxUnavailable, available_modes, isolation, run_program

MODE = isolation()
NAMESPACES = MODE in ("namespaces+uid", "userns")
needs_ns = pytest.mark.skipif(not NAMESPACES, reason=f"isolation is {MODE}")


def still_works():
    r = run_program("print(6 * 7)", timeout=10)
    assert r.exited_cleanly and r.stdout == "42\n", r


def processes_of(uid: int) -> list[int]:
    pids = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and os.stat(f"/proc/{p}").st_uid == uid:
                pids.append(int(p))
        except FileNotFoundError:
            pass
    return pids


def test_correct_program_runs_and_its_directory_is_deleted():
    r = run_program("import os\nopen('out.txt', 'w').write('hi')\n"
                    "print(open('out.txt').read(), os.getcwd())", timeout=10)
    assert r.exited_cleanly and r.returncode == 0 and r.reason == "ok" and not r.timed_out
    assert r.mode == MODE and r.leftover is None
    text, cwd = r.stdout.split()
    assert text == "hi"
    assert not os.path.exists(os.path.dirname(cwd))


def test_report_descriptor_and_inputs():
    r = run_program("import os\na = open(4, 'rb').read()\nb = open(5, 'rb').read()\n"
                    "os.write(3, b + b'|' + a)\n", timeout=10, inputs=[b"first", b"second"])
    assert r.exited_cleanly and r.report == b"second|first", r


def test_inputs_cannot_be_written():
    r = run_program("import os\nos.write(4, b'changed')\n", timeout=10, inputs=[b"sealed"])
    assert not r.exited_cleanly and "PermissionError" in r.stderr, r


def test_failing_program_reports_why():
    r = run_program("assert 1 + 1 == 3, 'arithmetic'", timeout=10)
    assert not r.exited_cleanly and r.returncode == 1
    assert "AssertionError: arithmetic" in r.stderr and "AssertionError" in r.reason


def test_infinite_loop_is_killed_at_the_timeout():
    start = time.monotonic()
    r = run_program("while True:\n    pass\n", timeout=2)
    assert r.timed_out and not r.exited_cleanly and r.reason == "timeout after 2s"
    assert time.monotonic() - start < 5
    still_works()


def test_ten_gigabytes_is_refused():
    r = run_program("block = bytearray(10 * 1024 ** 3)\nprint(len(block))", timeout=10,
                    memory_mb=512)
    assert not r.exited_cleanly and not r.timed_out
    assert "MemoryError" in r.stderr and r.reason == "out of memory (MemoryError)"
    still_works()


def test_memory_of_all_processes_together_is_capped():
    grow = ("import os, time\nfor i in range(3):\n    if os.fork() == 0:\n"
            "        b = bytearray(150 << 20)\n        b[::4096] = b'x' * len(b[::4096])\n"
            "        time.sleep(20)\ntime.sleep(20)\n")
    r = run_program(grow, timeout=10, memory_mb=256)   # each child fits, all three do not
    assert not r.exited_cleanly and r.reason.startswith("out of memory: its processes"), r
    assert r.seconds < 8
    still_works()


def test_output_flood_is_capped_and_tailed():
    r = run_program("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
                    timeout=10, max_file_mb=1, tail_chars=100)
    assert not r.exited_cleanly and not r.timed_out   # stopped by RLIMIT_FSIZE, not the clock
    assert len(r.stdout) <= 100
    still_works()


@needs_ns
def test_work_dir_is_a_small_tmpfs():
    r = run_program("open('big', 'wb').write(b'x' * (8 << 20))", timeout=10, max_disk_mb=4)
    assert not r.exited_cleanly and "No space left" in r.stderr, r
    r = run_program("for i in range(200):\n    open(f'f{i}', 'w').close()", timeout=10,
                    max_files=50)
    assert not r.exited_cleanly and "No space left" in r.stderr, r


@needs_ns
def test_fork_bomb_is_contained_and_nothing_survives():
    bomb = ("import os\nprint(os.getuid(), flush=True)\nwhile True:\n"
            "    try:\n        os.fork()\n    except OSError:\n        pass\n")
    r = run_program(bomb, timeout=3, max_procs=32)
    assert not r.exited_cleanly
    uid = int(r.stdout.split()[0])
    if uid != os.getuid():   # its own uid: we can count what is left of it
        time.sleep(0.2)
        assert processes_of(uid) == []
    still_works()


def test_daemonised_child_does_not_outlive_the_run():
    marker = f"ember-daemon-{uuid.uuid4().hex}"
    daemon = ("import os, sys, time\nif os.fork() == 0:\n    os.setsid()\n"
              "    if os.fork() == 0:\n"
              f"        os.execv(sys.executable, [sys.executable, '-c', 'import time; "
              f"time.sleep(60)', {marker!r}])\n    os._exit(0)\ntime.sleep(0.5)\n")
    r = run_program(daemon, timeout=10)
    assert r.exited_cleanly, r   # the program itself exits cleanly; its grandchild must go
    time.sleep(0.2)
    survivors = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and marker.encode() in open(f"/proc/{p}/cmdline", "rb").read():
                survivors.append(p)
        except OSError:
            pass
    assert survivors == []


@needs_ns
@pytest.mark.parametrize("where", ["/tmp", "/dev/shm", "repo", "test_dir", "/var/tmp"])
def test_writes_outside_the_work_dir_fail(where, tmp_path):
    tmp_path.chmod(0o777)  # even a world-writable directory of ours stays out of reach
    target_dir = {"repo": os.path.dirname(os.path.dirname(__file__)),
                  "test_dir": str(tmp_path)}.get(where, where)
    target = os.path.join(target_dir, f"ember-escape-{uuid.uuid4().hex}")
    r = run_program(f"open({target!r}, 'w').write('escaped')", timeout=10)
    assert not r.exited_cleanly and any(
        e in r.stderr for e in ("Read-only", "Permission", "No such file")), r
    assert not os.path.exists(target)
    still_works()


@needs_ns
def test_only_the_python_installation_and_system_dirs_are_visible(tmp_path):
    home = os.path.expanduser("~")
    probe = ("import os, sys\nprint(sorted(os.listdir('/')))\nprint(os.listdir('/tmp'))\n"
             f"print(os.path.exists({home!r} + '/.cache'), os.path.exists({str(tmp_path)!r}))\n"
             "print(os.path.exists(sys.base_prefix))\n")
    r = run_program(probe, timeout=10)
    top, tmp, hidden, python = r.stdout.splitlines()
    assert set(eval(top)) <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc",
                              "sbin", "tmp", "usr", *[p.split("/")[1] for p in (
                                  sandbox._view()[0] + [x[0] for x in sandbox._view()[1]])]}
    # its own work dir only, beside the way to a Python installation that lives under /tmp
    # (a checkout's .venv there): that path is bound read-only, nothing else of /tmp is
    bound = {p.split("/")[2] for p in sandbox._view()[0] + [x[0] for x in sandbox._view()[1]]
             if p.startswith("/tmp/")}
    own = [e for e in eval(tmp) if e.startswith("ember-sandbox-")]
    assert len(own) == 1 and set(eval(tmp)) - set(own) <= bound, (tmp, bound)
    assert hidden == "False False" and python == "True"


def test_secret_in_our_environment_is_not_visible(monkeypatch):
    secret = uuid.uuid4().hex
    monkeypatch.setenv("EMBER_TEST_SECRET_KEY", secret)
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    r = run_program("import os\nprint(dict(os.environ))\n"
                    "print(os.environ['EMBER_TEST_SECRET_KEY'])", timeout=10)
    assert not r.exited_cleanly and "KeyError" in r.stderr
    assert secret not in r.stdout and secret not in r.stderr
    still_works()


def test_secret_cannot_be_read_through_proc(monkeypatch):
    secret = uuid.uuid4().hex
    monkeypatch.setenv("EMBER_TEST_SECRET_KEY", secret)
    snoop = ("import os, sys\nfound = []\nfor p in os.listdir('/proc'):\n"
             "    try:\n        env = open(f'/proc/{p}/environ', 'rb').read()\n"
             "    except OSError:\n        continue\n"
             "    found += [v for v in env.split(b'\\0') if b'EMBER_TEST_SECRET' in v]\n"
             "print(found)\nsys.exit(0 if found else 1)\n")
    r = run_program(snoop, timeout=10)
    assert not r.exited_cleanly and r.stdout == "[]\n"
    assert secret not in r.stdout


def test_network_is_unreachable_even_on_loopback():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        r = run_program("import socket\n"
                        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                        "s.sendall(b'stolen data')\n", timeout=10)
        assert not r.exited_cleanly and not r.timed_out
        listener.settimeout(0.5)
        with pytest.raises(socket.timeout):
            listener.accept()          # nothing ever connected
    finally:
        listener.close()
    still_works()


def test_weak_modes_need_the_opt_in(monkeypatch):
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    with pytest.raises(SandboxUnavailable, match=sandbox.UNSAFE_ENV):
        run_program("pass", mode="rlimits")
    # a machine where no namespace works: isolation() refuses, in one line
    for mode in ("namespaces+uid", "userns"):
        monkeypatch.setitem(sandbox._probed, mode, "Operation not permitted (as if)")
    with pytest.raises(SandboxUnavailable) as refused:
        isolation()
    assert "\n" not in str(refused.value) and sandbox.UNSAFE_ENV in str(refused.value)
    monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
    weak = [m for m in available_modes() if m in sandbox.WEAK_MODES]
    if weak:
        assert isolation() == weak[0]
        r = run_program("print('ran')", timeout=10)
        assert r.exited_cleanly and r.mode == weak[0]


def test_a_named_mode_that_does_not_exist_is_an_error():
    with pytest.raises(ValueError, match="unknown sandbox mode"):
        run_program("pass", mode="chroot")


@pytest.mark.parametrize("mode", sandbox.MODES)
def test_unreadable_work_dir_is_removed_in_every_mode(mode, monkeypatch):
    if mode not in available_modes():
        pytest.skip(f"{mode}: {sandbox.probe_failure(mode)}")
    monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
    lock = ("import os\nos.makedirs('a/b')\nopen('a/b/f', 'w').write('x')\n"
            "os.chmod('a/b', 0)\nos.chmod('a', 0)\nprint(os.getcwd())\nos.chmod('.', 0)\n")
    r = run_program(lock, timeout=10, mode=mode)
    assert r.exited_cleanly and r.mode == mode and r.leftover is None, r
    assert not os.path.exists(r.stdout.strip())


def test_removal_that_fails_is_said(tmp_path):
    if os.geteuid() != 0 or not shutil.which("chattr"):
        pytest.skip("needs root and chattr to make a file that cannot be removed")
    base = tempfile.mkdtemp(prefix="ember-sandbox-")
    stuck = os.path.join(base, "stuck")
    open(stuck, "w").close()
    if subprocess.run(["chattr", "+i", stuck], capture_output=True).returncode != 0:
        shutil.rmtree(base)
        pytest.skip("this filesystem has no immutable attribute")
    try:
        message = sandbox._remove(base)
        assert message and message.startswith("could not remove the work directory") and base in message
    finally:
        subprocess.run(["chattr", "-i", stuck])
        shutil.rmtree(base, ignore_errors=True)
