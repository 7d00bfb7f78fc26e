"""Run untrusted Python (model-written code) in a locked-down subprocess.

    from ember.evaluate.sandbox import run_program, isolation
    r = run_program("print(6 * 7)", timeout=10, memory_mb=1024)
    r.exited_cleanly, r.returncode, r.stdout, r.stderr, r.report, r.timed_out, r.reason
    r.mode             # the containment it ran under, e.g. "namespaces+uid"
    isolation()        # the mode run_program uses here (raises SandboxUnavailable if none)

The program is written to ``main.py`` in a private work directory (mode 0700, removed
afterwards even if the program made it unreadable; ``r.leftover`` says why when removal
failed) and run as ``__main__`` by an isolated interpreter (``-I``; our installation's
site-packages on ``sys.path``, their ``.pth`` files not run), with an empty environment
plus PATH, LANG, HOME and TMPDIR (both the work directory). ``exited_cleanly`` is only the
exit status: it is not a verdict. A program that must prove something (the code scorer's
harness) writes to file descriptor 3, whose bytes come back as ``r.report``; ``inputs``
arrive as read-only descriptors 4, 5, ... that the program can read and close. Every call
is independent and safe to make from many threads at once.

A bootstrap (``_BOOT``, a fresh single-threaded ``python -I -S``) builds the cage, forks,
and stays as the run's supervisor; the child locks itself in and runs the program in the
same interpreter (one interpreter start per run). Modes, strongest first
(``isolation()`` probes once per process; ``EMBER_SANDBOX=MODE`` or ``mode=`` picks one):

``namespaces+uid`` (root with CAP_SYS_ADMIN)
    New mount, PID, network, IPC, UTS and cgroup namespaces, and a random unprivileged
    uid/gid with no groups. The root directory is a fresh read-only tmpfs holding only
    /usr, /bin, /lib*, a few /etc files (passwd, group, hosts, ld.so.*, localtime,
    nsswitch.conf), the Python installation (read-only), /dev/null, zero, full, random,
    urandom, a /proc of its own PID namespace, an empty /tmp and the work directory: a
    tmpfs of ``max_disk_mb`` and ``max_files`` inodes. Home directories, caches, other
    runs' directories, /run, /var, /dev/shm and the host's /tmp do not exist there. Only a
    loopback that is down exists, and sockets are refused anyway.
``userns`` (not root, or root where the mode above fails; user namespaces allowed)
    The same, inside a user namespace that maps our uid to itself, with every capability
    dropped (the program keeps our uid but sees none of our files).
``rlimits+landlock`` / ``rlimits`` (nothing better: only with ``EMBER_UNSAFE_SANDBOX=1``)
    No namespaces. Without the opt-in ``isolation()`` refuses with one line. The program
    runs in its own session under a supervisor that is a child subreaper, so whatever it
    forks, setsid or daemonises is found and killed at the end. As root it gets a random
    uid where other users may run our Python, else it stays uid 0 with every capability
    dropped (Linux then does not apply RLIMIT_NPROC; the polled process count does). Our
    process is made non-dumpable while such runs are alive and the program's seccomp
    filter refuses signals to us, to the supervisor and to -1, so it cannot read
    /proc/<ppid>/environ or mem, ptrace, prlimit or kill its parent. Where the kernel has
    Landlock (``rlimits+landlock``), it may read only /usr, /bin, /lib*, those /etc files
    and the Python installation, write only its work directory, not reach TCP, and not
    signal or reach abstract sockets outside the run. Plain ``rlimits`` cannot hide files:
    the program reads (and writes) whatever our user may, which is why it needs the
    opt-in.

In every mode: ``no_new_privs``; a seccomp filter that refuses socket(), connect(),
sendmsg() and addressed sendto() (so no network from any child, no UNIX socket on the
filesystem, no DNS), ptrace, process_vm_readv/writev, io_uring, memfd_create, SysV and
POSIX IPC, keyrings, bpf, perf, userfaultfd and new namespaces; a wall-clock timeout
enforced by the supervisor, which then kills every process of the run; rlimits per
process (CPU timeout + 1 s, AS ``memory_mb``, FSIZE ``max_file_mb`` which also caps
stdout/stderr, NOFILE ``max_open_files``, NPROC ``max_procs``, CORE and MEMLOCK 0); and
aggregate limits that the supervisor polls (every 50 ms with namespaces, 250 ms without):
the resident memory of all the run's processes together (``memory_mb``; shared pages count
for each process, so this errs on the safe side), their number, and without namespaces the
bytes and files in the work directory. No cgroup is used: creating one needs a delegated
cgroup v2 subtree, which ember does not assume.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

UNSAFE_ENV = "EMBER_UNSAFE_SANDBOX"   # "1": allow the rlimits modes
MODE_ENV = "EMBER_SANDBOX"            # force one mode by name
MODES = ("namespaces+uid", "userns", "rlimits+landlock", "rlimits")  # strongest first
WEAK_MODES = ("rlimits+landlock", "rlimits")
REPORT_LIMIT = 1 << 16

log = logging.getLogger(__name__)

# The bootstrap runs as ``python -I -S -c _BOOT CONFIG``. It is a fresh single-threaded
# process, so unlike a preexec_fn it is safe however many threads the caller runs. It
# builds the cage, forks the program, and supervises it until every process is gone.
_BOOT = r'''
import ctypes, fcntl, json, os, resource, select, signal, struct, sys, time

cfg = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
UL = ctypes.c_ulong
NEWNS, NEWCGROUP, NEWUTS, NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
NEWUSER, NEWPID, NEWNET, NEWTIME = 0x10000000, 0x20000000, 0x40000000, 0x80
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE, MNT_DETACH = 4096, 16384, 1 << 18, 2
KEEP = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": 1024,
        "nodiratime": 2048, "relatime": 1 << 21}   # flags a remount must not drop
EPERM, EACCES, ENOSYS = 1, 13, 38

def fail(what, err=None):
    err = ctypes.get_errno() if err is None else err
    os.write(2, f"sandbox setup failed: {what}: {os.strerror(err)}\n".encode())
    os._exit(125)

def prctl(*args):
    return libc.prctl(*[UL(a) for a in args] + [UL(0)] * (5 - len(args)))

def mount(src, dst, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    if libc.mount(enc(src), enc(dst), enc(fstype), UL(flags), enc(data)) != 0:
        fail("mount " + dst)

def remap_fds():  # 3: the report pipe, 4..: the inputs; status and source stay out of reach
    f = cfg["fds"]
    mine = [f["status"], f["source"], f["report"]] + f["inputs"]
    end = 4 + len(f["inputs"])   # parked just above the program's range: NOFILE may be low
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, end) for fd in mine]
    for fd in mine:
        os.close(fd)
    for i, fd in enumerate(high[2:]):
        os.dup2(fd, 3 + i)
        os.close(fd)
    return high[0], high[1], end

def write_source(fd, path, uid):
    with open(fd, "rb") as src:
        data = src.read()
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(out, data)
    os.close(out)
    if uid is not None:
        os.chown(path, uid, uid)

# --- seccomp -------------------------------------------------------------------------
SYS = {"x86_64": dict(arch=0xC000003E, socket=41, connect=42, sendto=44, sendmsg=46,
                      sendmmsg=307, ptrace=101, process_vm_readv=310, process_vm_writev=311,
                      kill=62, tkill=200, tgkill=234, rt_sigqueueinfo=129,
                      rt_tgsigqueueinfo=297, pidfd_send_signal=424, pidfd_open=434,
                      pidfd_getfd=438, prlimit64=302, io_uring_setup=425, io_uring_enter=426,
                      io_uring_register=427, memfd_create=319, memfd_secret=447, shmget=29,
                      semget=64, msgget=68, mq_open=240, keyctl=250, add_key=248,
                      request_key=249, unshare=272, setns=308, clone=56, clone3=435, bpf=321,
                      perf_event_open=298, userfaultfd=323, pivot_root=155),
       "aarch64": dict(arch=0xC00000B7, socket=198, connect=203, sendto=206, sendmsg=211,
                       sendmmsg=269, ptrace=117, process_vm_readv=270, process_vm_writev=271,
                       kill=129, tkill=130, tgkill=131, rt_sigqueueinfo=138,
                       rt_tgsigqueueinfo=240, pidfd_send_signal=424, pidfd_open=434,
                       pidfd_getfd=438, prlimit64=261, io_uring_setup=425, io_uring_enter=426,
                       io_uring_register=427, memfd_create=279, memfd_secret=447, shmget=194,
                       semget=190, msgget=186, mq_open=180, keyctl=219, add_key=217,
                       request_key=218, unshare=97, setns=268, clone=220, clone3=435, bpf=280,
                       perf_event_open=241, userfaultfd=282, pivot_root=41)}
NR = SYS.get(os.uname().machine)

def seccomp(protect):
    """Refuse what no honest program here needs; ``protect``: pids it may not signal."""
    if NR is None:
        fail("seccomp", ENOSYS)
    LD, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
    ALLOW, KILL = 0x7FFF0000, 0x80000000
    err = lambda e: 0x00050000 | e
    arg = lambda i, high=False: 16 + 8 * i + (4 if high else 0)
    prog = [(LD, 0, 0, 4), (JEQ, 1, 0, NR["arch"]), (RET, 0, 0, KILL), (LD, 0, 0, 0)]
    if NR["arch"] == 0xC000003E:   # the x32 ABI numbers would bypass every rule below
        prog += [(JGE, 0, 1, 0x40000000), (RET, 0, 0, err(ENOSYS))]
    deny = {"socket": EACCES, "connect": EACCES, "sendmsg": EACCES, "sendmmsg": EACCES,
            "ptrace": EPERM, "process_vm_readv": EPERM, "process_vm_writev": EPERM,
            "tkill": EPERM, "pidfd_send_signal": EPERM, "pidfd_getfd": EPERM,
            "io_uring_setup": ENOSYS, "io_uring_enter": ENOSYS, "io_uring_register": ENOSYS,
            "memfd_create": EPERM, "memfd_secret": EPERM, "shmget": EPERM, "semget": EPERM,
            "msgget": EPERM, "mq_open": EPERM, "keyctl": EPERM, "add_key": EPERM,
            "request_key": EPERM, "unshare": EPERM, "setns": EPERM, "clone3": ENOSYS,
            "bpf": EPERM, "perf_event_open": EPERM, "userfaultfd": EPERM}
    for name, e in deny.items():
        prog += [(JEQ, 0, 1, NR[name]), (RET, 0, 0, err(e))]
    def refuse_values(name, i, values):   # deny when the low 32 bits of arg i are listed
        body = [(LD, 0, 0, arg(i))]
        body += [(JEQ, len(values) - j, 0, v & 0xFFFFFFFF) for j, v in enumerate(values)]
        body += [(RET, 0, 0, ALLOW), (RET, 0, 0, err(EPERM))]
        return [(JEQ, 0, len(body), NR[name])] + body
    targets = sorted({p for p in protect} | {-p for p in protect} | {-1})
    prog += refuse_values("kill", 0, targets)
    for name in ("tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_open"):
        prog += refuse_values(name, 0, sorted(set(protect)) or [-1])
    # prlimit64 only on itself (pid 0); sendto only without an address; clone without
    # CLONE_NEW* flags
    prog += [(JEQ, 0, 4, NR["prlimit64"]), (LD, 0, 0, arg(0)), (JEQ, 0, 1, 0),
             (RET, 0, 0, ALLOW), (RET, 0, 0, err(EPERM))]
    prog += [(JEQ, 0, 6, NR["sendto"]), (LD, 0, 0, arg(4)), (JEQ, 0, 3, 0),
             (LD, 0, 0, arg(4, True)), (JEQ, 0, 1, 0), (RET, 0, 0, ALLOW),
             (RET, 0, 0, err(EACCES))]
    prog += [(JEQ, 0, 4, NR["clone"]), (LD, 0, 0, arg(0)),
             (JSET, 1, 0, NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
              | NEWTIME),
             (RET, 0, 0, ALLOW), (RET, 0, 0, err(EPERM))]
    prog += [(RET, 0, 0, ALLOW)]
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *ins) for ins in prog))
    fprog = ctypes.create_string_buffer(struct.pack("HP", len(prog), ctypes.addressof(code)))
    if prctl(22, 2, ctypes.addressof(fprog)) != 0:   # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        fail("seccomp")

# --- landlock --------------------------------------------------------------------------
def landlock(ro, rw, dev):
    abi = libc.syscall(UL(444), None, UL(0), UL(1))   # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        fail("landlock")
    fs = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (
        1 << 15 if abi >= 5 else 0)
    attr = struct.pack("QQQ", fs, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)
    attr = attr[:8 if abi < 4 else 16 if abi < 6 else 24]
    buf = ctypes.create_string_buffer(attr, len(attr))
    rs = libc.syscall(UL(444), buf, UL(len(attr)), UL(0))
    if rs < 0:
        fail("landlock ruleset")
    FILE_RIGHTS = 1 | 2 | 4 | (1 << 14 if abi >= 3 else 0)   # execute, write, read, truncate
    def allow(path, access):
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return
        if not os.path.isdir(path):
            access &= FILE_RIGHTS
        rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)
        if libc.syscall(UL(445), UL(rs), UL(1), rule, UL(0)) != 0:
            fail("landlock rule " + path)
        os.close(fd)
    for path in ro:
        allow(path, 1 | 4 | 8)   # execute, read files, read directories
    for path in dev:
        allow(path, 2 | 4)
    for path in rw:
        allow(path, fs)
    if libc.syscall(UL(446), UL(rs), UL(0)) != 0:
        fail("landlock restrict")
    os.close(rs)

# --- the program -----------------------------------------------------------------------
def drop_capabilities():
    """Root keeping uid 0 (its Python is private to root): no capability, now or after exec."""
    for cap in range(64):
        if prctl(24, cap) != 0:   # PR_CAPBSET_DROP, until past the last capability
            break
    prctl(47, 4)   # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL
    header = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0), 8)
    data = ctypes.create_string_buffer(bytes(24), 24)   # effective, permitted, inheritable: none
    if libc.capset(header, data) != 0:
        fail("capset")

def become_program(protect):
    """In the forked child: limits, identity, filters; then run main.py in this very
    interpreter (one interpreter start per run, not two)."""
    try:
        for name, value in cfg["limits"].items():
            which = getattr(resource, name)
            hard = resource.getrlimit(which)[1]   # raising a hard limit needs a capability
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, value))
        if cfg["uid"] is not None:
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])   # from root to a uid of its own: every capability goes
        elif cfg["dropcaps"] or cfg["userns"]:
            drop_capabilities()     # uid 0, or all powers inside the user namespace: none kept
    except (OSError, ValueError) as e:
        fail(f"limits and identity: {e}", getattr(e, "errno", 0) or 0)
    if prctl(38, 1) != 0:   # PR_SET_NO_NEW_PRIVS
        fail("no_new_privs")
    if cfg["landlock"]:
        landlock(**cfg["landlock"])
    seccomp(protect)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.argv[:] = ["main.py"]
    # the installation's site-packages, without running their .pth files
    sys.path[:] = [p for p in sys.path if p] + cfg["site"]
    path = os.path.join(os.getcwd(), "main.py")
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    for name in [n for n in globals() if not n.startswith("__")]:
        del globals()[name]   # the bootstrap's own names are no business of the program
    exec(code, namespace)

# --- the root of the namespace modes ---------------------------------------------------
def unescape(path):
    out, i = "", 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 4].isdigit():
            out, i = out + chr(int(path[i + 1:i + 4], 8)), i + 4
        else:
            out, i = out + path[i], i + 1
    return out

def build_root():
    """A fresh read-only tmpfs root with only what the program needs, then pivot into it."""
    R, work = cfg["root"], cfg["work"]
    mount(None, "/", None, MS_REC | MS_PRIVATE)   # nothing below leaks to the host
    mount("tmpfs", R, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=4m,nr_inodes=4096")
    for src in cfg["binds"]:
        dst = R + src
        if os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.close(os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644))
        mount(src, dst, None, MS_BIND | MS_REC)
    for path, target in cfg["links"]:
        os.makedirs(os.path.dirname(R + path), exist_ok=True)
        os.symlink(target, R + path)
    os.makedirs(R + "/dev")
    for name in ("null", "zero", "full", "random", "urandom"):
        os.close(os.open(f"{R}/dev/{name}", os.O_WRONLY | os.O_CREAT, 0o666))
        mount(f"/dev/{name}", f"{R}/dev/{name}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{R}/dev/{name}")
    os.makedirs(R + "/proc")
    mount("proc", R + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)   # our pids only
    os.makedirs(R + "/tmp", exist_ok=True)
    os.makedirs(R + work)
    owner = f",uid={cfg['uid']},gid={cfg['uid']}" if cfg["uid"] is not None else ""
    mount("tmpfs", R + work, "tmpfs", MS_NOSUID | MS_NODEV,
          f"mode=700,size={cfg['disk']},nr_inodes={cfg['files']}{owner}")
    write_source(SOURCE, R + work + "/main.py", cfg["uid"])
    devices = {f"{R}/dev/{n}" for n in ("null", "zero", "full", "random", "urandom")}
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    for line in lines:
        fields = line.split()
        target = unescape(fields[4])
        if not (target == R or target.startswith(R + "/")) or target in (R + work, R + "/proc"):
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        flags |= 0 if target in devices else MS_NODEV   # /dev/null must stay a device
        for opt in fields[5].split(","):
            flags |= KEEP.get(opt, 0)
        mount(None, target, None, flags)
    os.chdir(R)
    if libc.syscall(UL(NR["pivot_root"]), b".", b".") != 0:
        fail("pivot_root")
    if libc.umount2(b".", MNT_DETACH) != 0:   # the old root, now stacked on top of ours
        fail("umount old root")
    os.chdir(work)

# --- supervision -----------------------------------------------------------------------
PAGE = os.sysconf("SC_PAGE_SIZE")

def process_table():
    """pid -> ppid of every process we can see."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    data = f.read()
                table[int(name)] = int(data[data.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return table

def run_pids(ns):
    me = os.getpid()
    table = process_table()
    if ns:   # our PID namespace holds the run and nothing else
        return [p for p in table if p != me]
    kids = {}
    for pid, ppid in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = [], [me]
    while todo:
        for c in kids.get(todo.pop(), ()):
            out.append(c)
            todo.append(c)
    return out

def resident(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
    return total

def usage(path, cap):
    files = size = 0
    stack = [path]
    while stack and files <= cap:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            files += 1
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            size += st.st_blocks * 512
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
    return files, size

def reap(child, rc):
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return rc, False
        if pid == 0:
            return rc, True
        if pid == child:
            rc = os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)

def kill_all(ns):
    if ns:   # as pid 1 of the namespace, -1 is every other process in it
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    if cfg["uid"] is not None:   # every process of the run's own uid, wherever it went
        helper = os.fork()
        if helper == 0:
            try:
                os.setgid(cfg["uid"])
                os.setuid(cfg["uid"])
                for _ in range(100):
                    os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            os._exit(0)
        os.waitpid(helper, 0)
    for _ in range(1000):   # then the tree below us (orphans come to us: we are a subreaper)
        pids = run_pids(False)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        reap(None, None)
        time.sleep(0.005)

def supervise(child, ns, status_fd):
    prctl(4, 0)   # PR_SET_DUMPABLE: the program may not read our memory or descriptors
    for fd in range(3, cfg["fds_end"]):
        if fd != status_fd:
            try:
                os.close(fd)
            except OSError:
                pass
    start = time.monotonic()
    deadline = start + cfg["timeout"]
    interval = 0.05 if ns else 0.25
    next_check = start + interval
    try:
        waiter = select.poll()
        waiter.register(os.pidfd_open(child), select.POLLIN)
    except (AttributeError, OSError):
        waiter = None
    rc, why, peak = None, None, 0
    while True:
        now = time.monotonic()
        if now >= deadline:
            why = "timeout"
            break
        wait = max(0.0, min(deadline, next_check) - now)
        if waiter is not None:
            waiter.poll(wait * 1000)
        else:
            time.sleep(min(wait, 0.005))
        rc, _ = reap(child, rc)
        if rc is not None:
            break
        if STOP:
            why = "stopped"
            break
        if time.monotonic() >= next_check:
            pids = run_pids(ns)
            mem = resident(pids)
            peak = max(peak, mem)
            if mem > cfg["memory"]:
                why = "memory"
            elif len(pids) > cfg["procs"]:
                why = "procs"
            elif not ns:
                files, size = usage(cfg["work"], cfg["files"])
                why = "files" if files > cfg["files"] else "disk" if size > cfg["disk"] else None
            if why:
                break
            next_check = time.monotonic() + interval
    # Kill and reap until nothing is left, but never wait for ever: a process that cannot
    # die at once must not keep the supervisor (and so ember) waiting.
    end = time.monotonic() + 5
    while True:
        kill_all(ns)
        rc_now, alive = reap(child, None)
        if rc is None and why is None:
            rc = rc_now
        if not alive or time.monotonic() > end:
            break
        time.sleep(0.01)
    status = {"rc": rc, "why": why, "peak_rss": peak, "seconds": time.monotonic() - start}
    os.write(status_fd, json.dumps(status).encode())
    os._exit(0)

STOP = []
try:
    status_fd, SOURCE, cfg["fds_end"] = remap_fds()
except OSError as e:
    fail("descriptors", e.errno)
if cfg["ns"]:
    if libc.unshare(NEWNS | NEWNET | NEWPID | NEWIPC | NEWUTS | NEWCGROUP
                    | (NEWUSER if cfg["userns"] else 0)):
        fail("unshare")
    if cfg["userns"]:   # map us to ourselves: same files, no new powers outside
        uid, gid = os.getuid(), os.getgid()
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    init = os.fork()
    if init:   # outside the namespace: wait for its pid 1 and exit as it did
        for fd in range(3, cfg["fds_end"]):
            try:
                os.close(fd)
            except OSError:
                pass
        _, st = os.waitpid(init, 0)
        os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st))
    # pid 1 of the new namespace: when it dies, the kernel kills everything inside
    prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG: and it dies when our parent is killed
    os.umask(0o022)
    try:
        build_root()
    except OSError as e:
        fail(f"building the root: {e.filename}", e.errno or 0)
    child = os.fork()
    if child == 0:
        become_program([])
    else:
        supervise(child, True, status_fd)
else:
    signal.signal(signal.SIGTERM, lambda *_: STOP.append(1))
    prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG: clean up if ember dies
    prctl(36, 1)               # PR_SET_CHILD_SUBREAPER: orphans of the run come to us
    prctl(4, 0)
    write_source(SOURCE, cfg["work"] + "/main.py", cfg["uid"])
    child = os.fork()
    if child == 0:
        os.setsid()   # its own session and group, away from ours
        os.chdir(cfg["work"])
        parent, group = cfg["parent"]
        become_program(sorted({parent, group, os.getppid()}))
    else:
        supervise(child, False, status_fd)
'''

_ETC = ("passwd", "group", "hosts", "nsswitch.conf", "ld.so.cache", "ld.so.conf",
        "ld.so.conf.d", "localtime", "host.conf")
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_DEVICES = tuple(f"/dev/{n}" for n in ("null", "zero", "full", "random", "urandom"))

_probed: dict[str, str | None] = {}   # mode -> None when it works, else why not
_probe_lock = threading.Lock()
_dumpable_lock = threading.Lock()
_dumpable_users = 0


class SandboxUnavailable(RuntimeError):
    """No mode strong enough is available here and weak ones were not opted into."""


@dataclass
class SandboxResult:
    exited_cleanly: bool    # exit status 0 within the time limit: NOT a verdict
    returncode: int | None  # 128 + N when killed by signal N
    stdout: str             # the last ``tail_chars`` characters
    stderr: str
    report: bytes           # what the program wrote to fd 3 (at most 64 KiB)
    timed_out: bool
    reason: str             # "ok", "timeout after 10s", "exit code 1: AssertionError", ...
    seconds: float
    mode: str               # the containment it ran under
    leftover: str | None = None   # why the work directory could not be removed


def available_modes() -> list[str]:
    """Every mode that works on this machine for this user, strongest first (each is
    probed once per process with a trivial program; weak ones regardless of opt-in)."""
    return [m for m in MODES if _works(m)]


def probe_failure(mode: str) -> str | None:
    """Why ``mode`` does not work here (None when it does)."""
    _works(mode)
    return _probed[mode]


def isolation() -> str:
    """The mode ``run_program`` uses by default: ``$EMBER_SANDBOX`` if set, else the
    strongest namespace mode that works; the rlimits modes only with
    ``EMBER_UNSAFE_SANDBOX=1``. Raises SandboxUnavailable (one line) otherwise."""
    forced = os.environ.get(MODE_ENV)
    if forced:
        return _checked(forced)
    for mode in MODES:
        if mode not in WEAK_MODES and _works(mode):
            return mode
    if os.environ.get(UNSAFE_ENV) == "1":
        for mode in WEAK_MODES:
            if _works(mode):
                return mode
    why = "; ".join(f"{m}: {_probed.get(m) or 'not tried'}" for m in MODES
                    if m not in WEAK_MODES).replace("\n", " ")
    raise SandboxUnavailable(
        f"ember will not run model code here: no namespace sandbox works ({why}); only "
        f"rlimits would contain it, so the code could read your files and reach your other "
        f"processes; set {UNSAFE_ENV}=1 to accept that")


def _checked(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown sandbox mode {mode!r}; choose from {', '.join(MODES)}")
    if mode in WEAK_MODES and os.environ.get(UNSAFE_ENV) != "1":
        raise SandboxUnavailable(f"sandbox mode {mode} runs model code without namespaces; "
                                 f"set {UNSAFE_ENV}=1 to accept that")
    if not _works(mode):
        raise SandboxUnavailable(f"sandbox mode {mode} does not work here: {_probed[mode]}")
    return mode


def _works(mode: str) -> bool:
    if mode == "userns" and os.geteuid() == 0:
        _works("namespaces+uid")   # root tries this one only where the other fails
    with _probe_lock:
        if mode not in _probed:
            if mode == "namespaces+uid" and os.geteuid() != 0:
                _probed[mode] = "needs root"
            elif mode == "userns" and os.geteuid() == 0 and _probed.get("namespaces+uid") is None:
                _probed[mode] = "as root, namespaces+uid is used instead"
            else:
                r = _run("print('ok')", mode, timeout=20)
                _probed[mode] = None if r.exited_cleanly and r.stdout == "ok\n" else (
                    r.reason if r.reason != "ok" else f"unexpected output {r.stdout!r}")
        return _probed[mode] is None


def run_program(code: str, *, timeout: float = 10, memory_mb: int = 1024,
                max_procs: int = 64, max_file_mb: int = 64, max_disk_mb: int = 64,
                max_files: int = 1000, max_open_files: int = 64, tail_chars: int = 4000,
                inputs: tuple[bytes, ...] | list[bytes] = (),
                mode: str | None = None) -> SandboxResult:
    """Run ``code`` as a Python program in the sandbox and report how it ended.

    ``memory_mb`` bounds each process (RLIMIT_AS) and all of them together; ``max_procs``
    the processes and threads; ``max_disk_mb``/``max_files`` the work directory;
    ``inputs`` become read-only descriptors 4, 5, ... ``mode`` forces a mode (weak ones
    still need the opt-in). Raises SandboxUnavailable where no allowed mode works."""
    mode = _checked(mode) if mode else isolation()
    return _run(code, mode, timeout=timeout, memory_mb=memory_mb, max_procs=max_procs,
                max_file_mb=max_file_mb, max_disk_mb=max_disk_mb, max_files=max_files,
                max_open_files=max_open_files, tail_chars=tail_chars, inputs=inputs)


def _run(code: str, mode: str, *, timeout: float, memory_mb: int = 1024, max_procs: int = 64,
         max_file_mb: int = 64, max_disk_mb: int = 64, max_files: int = 1000,
         max_open_files: int = 64, tail_chars: int = 4000, inputs=()) -> SandboxResult:
    ns = mode in ("namespaces+uid", "userns")
    root = os.geteuid() == 0
    # A random uid per run (as root), so its processes and files are its own, and
    # RLIMIT_NPROC counts this run alone even when other runs go on at the same time.
    # Without namespaces that needs a Python that others may run; else root stays uid 0
    # without any capability.
    uid = 1_000_000_000 + secrets.randbelow(1_000_000_000) if root and (
        mode == "namespaces+uid" or not ns and _python_is_public()) else None
    same_uid = uid is None and not ns   # the program runs as we do: guard our /proc files
    base = os.path.realpath(tempfile.mkdtemp(prefix="ember-sandbox-"))  # 0700: ours only
    work = os.path.join(base, "work")
    fds: list[int] = []
    try:
        if ns:
            os.mkdir(os.path.join(base, "root"))   # where the run's own root is mounted
        else:
            os.mkdir(work, 0o700)
            if uid is not None:
                os.chmod(base, 0o711)   # it may pass through to its work dir, and no further
                os.chown(work, uid, uid)
        limits = {"RLIMIT_CPU": int(timeout) + 1, "RLIMIT_AS": memory_mb << 20,
                  "RLIMIT_FSIZE": max_file_mb << 20, "RLIMIT_CORE": 0, "RLIMIT_MEMLOCK": 0,
                  "RLIMIT_NOFILE": max_open_files, "RLIMIT_MSGQUEUE": 0,
                  "RLIMIT_NPROC": max_procs if ns or root
                  else _tasks_of_uid() + max_procs + 64}   # that count is the user's: margin
        binds, links = _view()
        report_r, report_w = os.pipe()
        status_r, status_w = os.pipe()
        fds += [report_r, report_w, status_r, status_w]
        source = _memfd(code.encode("utf-8", "surrogateescape"))
        fds.append(source)
        input_fds = [_memfd(bytes(b)) for b in inputs]
        fds += input_fds
        cfg = {"ns": ns, "userns": mode == "userns", "uid": uid,
               "dropcaps": root and uid is None,
               "work": work,
               "root": os.path.join(base, "root"), "binds": binds, "links": links,
               "limits": limits, "disk": max_disk_mb << 20, "files": max_files,
               "memory": memory_mb << 20, "procs": max_procs, "timeout": timeout,
               "parent": [os.getpid(), os.getpgrp()],
               "landlock": {"ro": binds, "rw": [work], "dev": list(_DEVICES)}
               if mode == "rlimits+landlock" else None,
               "site": _site_packages(),
               "fds": {"report": report_w, "status": status_w, "source": source,
                       "inputs": input_fds}}
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "HOME": work, "TMPDIR": work,
               # one BLAS/OpenMP thread: a pool per core would hit RLIMIT_NPROC and AS
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        out_path, err_path = os.path.join(base, "stdout"), os.path.join(base, "stderr")
        private = lambda path, flags: os.open(path, flags, 0o600)  # not for other runs' eyes
        guard = _parent_undumpable() if same_uid else contextlib.nullcontext()
        start = time.monotonic()
        with guard:
            with open(out_path, "wb", opener=private) as out, \
                    open(err_path, "wb", opener=private) as err:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _BOOT, json.dumps(cfg)], cwd=base,
                    env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                    start_new_session=True, pass_fds=[report_w, status_w, source, *input_fds])
            for fd in [report_w, status_w, source, *input_fds]:
                os.close(fd)
                fds.remove(fd)
            # The supervisor enforces the timeout; this is the backstop should it hang.
            finished = _wait_unreaped(proc, timeout + 15)
            if not finished:
                _stop(proc, ns)
            # Kill the group while the leader is still an unreaped zombie, so its id
            # cannot have been reused by someone else's process group.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            boot_rc = proc.wait()
        seconds = time.monotonic() - start
        status = _read_json(status_r)
        report = _read_all(report_r, REPORT_LIMIT)
        stdout, stderr = _tail(out_path, tail_chars), _tail(err_path, tail_chars)
    finally:
        for fd in fds:
            os.close(fd)
        leftover = _remove(base)
    rc = status.get("rc", boot_rc if boot_rc != 0 else None)
    why = status.get("why") or (None if finished else "timeout")
    timed_out = why == "timeout"
    exited_cleanly = rc == 0 and why is None
    reason = _reason(rc, why, timeout, stderr, memory_mb, max_procs, max_disk_mb, max_files)
    if 125 in (rc, boot_rc) and "sandbox setup failed" in stderr:
        reason = stderr.strip().splitlines()[-1]
    if leftover:
        log.warning("sandbox: %s", leftover)
    return SandboxResult(exited_cleanly, rc, stdout, stderr, report, timed_out, reason,
                         seconds, mode, leftover)


def _view() -> tuple[list[str], list[list[str]]]:
    """(paths bound read-only into the namespace root / allowed by Landlock, symlinks to
    recreate there): the system directories, a few /etc files and the Python
    installation, nothing else."""
    global _VIEW
    if _VIEW is None:
        binds: list[str] = []
        links: list[list[str]] = []
        for d in _SYSTEM:
            if os.path.islink(d):
                links.append([d, os.readlink(d)])
            elif os.path.isdir(d):
                binds.append(d)
        binds += [p for p in (f"/etc/{n}" for n in _ETC) if os.path.exists(p)]
        python = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable))]
        for p in python:
            real = os.path.realpath(p)
            for path in (real, os.path.abspath(p)):
                covered = any(path == b or path.startswith(b + "/") for b in binds)
                if covered or not os.path.isdir(path):
                    continue
                if path == real:
                    binds.append(real)
                else:
                    links.append([path, real])
        _VIEW = (binds, links)
    return _VIEW


_VIEW: tuple[list[str], list[list[str]]] | None = None


def _site_packages() -> list[str]:
    """Our installation's site-packages directories (added without their .pth files)."""
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def _python_is_public() -> bool:
    """Whether a user other than us may run our Python (every directory on the way to
    the installation is searchable by others)."""
    global _PUBLIC
    if _PUBLIC is None:
        _PUBLIC = True
        for path in _view()[0]:
            parts = path.split("/")
            for i in range(2, len(parts) + 1):
                d = "/".join(parts[:i])
                if os.path.isdir(d) and not os.stat(d).st_mode & 0o001:
                    _PUBLIC = False
    return _PUBLIC


_PUBLIC: bool | None = None


def _memfd(data: bytes) -> int:
    """A sealed anonymous file holding ``data``, positioned at its start."""
    fd = os.memfd_create("ember-sandbox", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    import fcntl

    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    return fd


def _tasks_of_uid() -> int:
    """Threads of our uid now: the base that RLIMIT_NPROC counts from without a uid or
    namespace of the run's own."""
    me, n = os.getuid(), 0
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                if os.stat(f"/proc/{p}").st_uid == me:
                    n += len(os.listdir(f"/proc/{p}/task"))
            except OSError:
                pass
    return n


@contextlib.contextmanager
def _parent_undumpable():
    """While any run without namespaces is alive, our /proc files (environ, mem, fd) are
    root's and ptrace is refused: the program, of our uid, cannot read or write us."""
    global _dumpable_users
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    with _dumpable_lock:
        if _dumpable_users == 0:
            prctl(4, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))
        _dumpable_users += 1
    try:
        yield
    finally:
        with _dumpable_lock:
            _dumpable_users -= 1
            if _dumpable_users == 0:
                prctl(4, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0))


def _stop(proc: subprocess.Popen, ns: bool) -> None:
    """The supervisor did not finish in time: ask it to clean up, then kill it."""
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not _wait_unreaped(proc, 2):
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_unreaped(proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until the child exits, without reaping it; False on timeout."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (old kernel): poll instead
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
                return True
            time.sleep(0.005)
        return False
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def _read_all(fd: int, limit: int) -> bytes:
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < limit:
        try:
            data = os.read(fd, min(65536, limit - size))
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def _read_json(fd: int) -> dict:
    try:
        value = json.loads(_read_all(fd, 1 << 16) or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _remove(base: str) -> str | None:
    """Delete the run's directory, whatever the program did to its permissions; the
    error as text when that fails."""
    def unlock(func, path, exc):
        try:   # a directory it made unreadable: open it up and try again
            parent = os.path.dirname(path)
            for p in (parent, path):
                if os.path.isdir(p) and not os.path.islink(p):
                    os.chmod(p, stat.S_IRWXU)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, onerror=unlock)
            else:
                os.unlink(path)
        except FileNotFoundError:
            pass

    try:
        shutil.rmtree(base, onerror=unlock)
    except OSError as e:
        return f"could not remove the work directory {base}: {e}"
    if os.path.lexists(base):
        return f"could not remove the work directory {base}"
    return None


def _tail(path: str, n: int) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 4 * n))
        return f.read().decode("utf-8", "replace")[-n:]


def _reason(rc, why, timeout, stderr, memory_mb, max_procs, max_disk_mb, max_files) -> str:
    if why == "timeout":
        return f"timeout after {timeout:g}s"
    if why == "memory":
        return f"out of memory: its processes together held more than {memory_mb} MB"
    if why == "procs":
        return f"too many processes: more than {max_procs}"
    if why == "disk":
        return f"disk limit: more than {max_disk_mb} MB in its work directory"
    if why == "files":
        return f"file limit: more than {max_files} files in its work directory"
    if why == "stopped":
        return "stopped: ember was asked to stop"
    if rc is None:
        lines = stderr.strip().splitlines()
        return lines[-1] if lines else "the sandbox ended without a status"
    if rc == 0:
        return "ok"
    sig = rc - 128 if rc > 128 else 0
    if sig in signal.valid_signals():
        return f"killed by {signal.Signals(sig).name}"
    lines = stderr.strip().splitlines()
    last = lines[-1] if lines else ""
    if "MemoryError" in last:
        return "out of memory (MemoryError)"
    return f"exit code {rc}" + (f": {last[:200]}" if last else "")
