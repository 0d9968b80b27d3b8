"""pyexec fork server: one interpreter with numpy and pandas imported that
forks a freshly isolated process for every execution.

It runs inside the server jail (an nsjail with user, mount, pid, net, ipc,
uts and cgroup namespaces, an unprivileged uid, a read-only filesystem and a
seccomp policy). It never runs user code itself: every execution runs in a
process forked from it that first builds a sandbox of its own, and that
sandbox is the only place user code ever runs.

Protocol (the Go side is executor/internal/jail/mode_fork.go):
  fd 3  the control socket (SOCK_SEQPACKET). The server writes b"ready" once
        its imports are done. Then each message from the executor, b"fork"
        with five descriptors (SCM_RIGHTS), asks for one sandbox:
          script (read end), stdout, stderr, report (write ends), and a
          status socket (SOCK_SEQPACKET) of that execution. b"session" asks
          for a session's: session.py's loop, its socket as the script.
        b"ping" (no descriptors) is the executor's watchdog asking whether
        the server still answers; it answers b"pong" on the control socket.
        End of file on the control socket means the executor is gone: the
        server exits, and its jail with it.

For each request the server forks the execution's process straight into new
user, mount, pid, net, ipc and uts namespaces (clone with their flags); it is
pid 1 of its pid namespace, maps its uid and gid to themselves and:
  1. mounts a fresh size-capped tmpfs on /tmp and /dev/shm and a fresh
     read-only /proc, sets the hostname and the rlimits;
  2. sends b"ready" on the status socket; the kernel attaches its pid, so the
     executor learns its host pid and moves it into the execution's cgroup;
  3. waits for b"go" (it is in its cgroup now), unshares a cgroup namespace
     rooted there, closes every descriptor but 0-4 (stdin /dev/null, stdout,
     stderr, script on 3, report on 4), drops every capability, sets
     no_new_privs and installs the seccomp filter the executor built;
  4. runs the harness (harness.main), which blocks reading the script.
The server, its parent, reaps it and sends b"exit N" or b"signal N" on the
status socket. That socket is closed in the execution's process before user
code runs, so only the server can write that line; and the process's pid
namespace dies with it, so the line means every process of the execution is
gone.

Standard library and ctypes only.
"""

import ctypes
import gc
import json
import os
import random
import resource
import select
import signal
import socket
import struct
import sys

CONTROL_FD = 3
OOM_SCORE_ADJ = 1000  # the most: killed first
CONFIG_FILE = "/pyexec/zygote.json"
HARNESS_DIR = "/pyexec"

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 0x40000

PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_CAPSET = 126  # x86_64; the executor uses fork mode there only

RLIMITS = {
    "cpu": resource.RLIMIT_CPU,
    "fsize": resource.RLIMIT_FSIZE,
    "stack": resource.RLIMIT_STACK,
    "core": resource.RLIMIT_CORE,
    "nofile": resource.RLIMIT_NOFILE,
    "as": resource.RLIMIT_AS,
}

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

MADV_DONTNEED = 4


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def write_file(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# os.fork() into new namespaces. The interpreter's own fork hooks run around
# the call exactly as os.fork runs them (PyDLL keeps the GIL held across it,
# as os.fork does). glibc's fork wrapper is bypassed: the server is single-
# threaded, so no lock it would reset is held, and as pid 1 of its jail its
# cached thread id (1) is the child's own, pid 1 of its new pid namespace.
SYS_CLONE = 56  # x86_64
SIGCHLD_SIGNAL = 17
_nogil = ctypes.PyDLL(None, use_errno=True)
_nogil.syscall.restype = ctypes.c_long
_nogil.syscall.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ulong]


def fork_into_namespaces():
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    ctypes.pythonapi.PyOS_BeforeFork()
    pid = _nogil.syscall(SYS_CLONE, flags | SIGCHLD_SIGNAL, None, None, None, 0)
    if pid == 0:
        ctypes.pythonapi.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    ctypes.pythonapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, "clone: %s" % os.strerror(err))
    return pid


def child(fds, config, bpf, session):
    """Runs in the execution's process, pid 1 of its new namespaces."""
    script, stdout, stderr, report, status_fd = fds
    status = socket.socket(fileno=status_fd)
    try:
        os.close(CONTROL_FD)
        # The uid and gid outside map to themselves inside; an unprivileged
        # process may map exactly its own ids into a namespace it created.
        uid, gid = config["uid"], config["gid"]
        write_file("/proc/self/uid_map", "%d %d 1\n" % (uid, uid))
        write_file("/proc/self/setgroups", "deny")
        write_file("/proc/self/gid_map", "%d %d 1\n" % (gid, gid))
        sandbox(script, stdout, stderr, report, status, config, bpf, session)
    except BaseException as exc:  # noqa: BLE001 - reported, then the process ends
        try:
            status.send(("error %s" % exc).encode("utf-8", "replace")[:4000])
        finally:
            os._exit(126)
    os._exit(126)


def sandbox(script, stdout, stderr, report, status, config, bpf, session):
    """Pid 1 of the execution's namespaces: isolates itself, then runs the
    harness, or with session the session's cell loop (session.py), whose
    control socket comes in the script's place."""
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making mounts private")
    tmp_options = ("size=%d,nr_inodes=16384,mode=1777" % config["tmp_bytes"]).encode()
    for target in (b"/tmp", b"/dev/shm"):
        check(libc.mount(b"tmpfs", target, b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, tmp_options), "mounting tmpfs")
    check(libc.mount(b"proc", b"/proc", b"proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "mounting /proc")
    # The working directory still pointed at the server jail's /tmp.
    os.chdir("/tmp")
    check(libc.sethostname(b"pyexec", 6), "setting the hostname")
    for name, value in config["rlimits"].items():
        if session and name == "cpu":
            # CPU time adds up over a session's cells; each cell's wall-clock
            # timeout, which kills the session, bounds it instead.
            continue
        limit = value if value >= 0 else resource.RLIM_INFINITY
        resource.setrlimit(RLIMITS[name], (limit, limit))

    status.send(b"ready")
    if status.recv(16) != b"go":
        os._exit(125)
    # In the execution's cgroup now: a cgroup namespace rooted there.
    check(libc.unshare(CLONE_NEWCGROUP), "unsharing the cgroup namespace")

    null = os.open("/dev/null", os.O_RDONLY)
    for src, dst in ((null, 0), (stdout, 1), (stderr, 2), (script, 3), (report, 4)):
        os.dup2(src, dst)
    status.close()
    os.closerange(5, 1 << 16)

    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient capabilities")
    header = CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (CapData * 2)()
    check(libc.syscall(SYS_CAPSET, ctypes.byref(header), ctypes.byref(data)), "dropping capabilities")
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "setting no_new_privs")
    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = SockFprog(len(bpf) // 8, ctypes.addressof(buf))
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0), "installing seccomp")

    # Nothing random is shared with the server or another execution: the
    # random module reseeds itself after fork; numpy's global state does not.
    random.seed()
    reseed_numpy()
    sys.argv[:] = [HARNESS_DIR + "/harness.py"]
    if session:
        import session as cells

        cells.serve()
    import harness

    harness.main()
    os._exit(0)


# numpy's global generator (MT19937): its state is a key of 624 32-bit
# words and a position in it.
MT_KEY_WORDS = 624
MT_KEY_BYTES = MT_KEY_WORDS * 4

# Where an execution writes its own key into numpy's global generator, or
# None to reseed it through numpy; numpy_state_address sets it.
numpy_state = None


def reseed_numpy():
    """Gives numpy's global generator a state of this execution's own."""
    if numpy_state is not None:
        ctypes.memmove(numpy_state, os.urandom(MT_KEY_BYTES), MT_KEY_BYTES)
        ctypes.c_int.from_address(numpy_state + MT_KEY_BYTES).value = MT_KEY_WORDS
        return
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed()


def numpy_state_address():
    """The address of numpy's global generator state, if it can be written.

    numpy.random.seed() costs a forked process about 0.8 ms, mostly in
    copying the pages of numpy's array machinery that it runs. The state is
    public through the generator's ctypes interface: writing 624 words from
    os.urandom, and the position 624 (a new block is made at the next draw),
    seeds it with more entropy than seed() gathers. The layout is checked
    here, against numpy's own reading of the state, with a key written the
    same way; if it differs, or a cached Gaussian would be shared, every
    execution reseeds through numpy instead. The server reseeds through numpy
    first, which also forgets the seed sequence numpy made at import (it
    would otherwise be the same in every execution).
    """
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is None:
        return None
    numpy_random.seed()
    try:
        address = numpy_random.mtrand._rand._bit_generator.ctypes.state_address
        probe = os.urandom(MT_KEY_BYTES)
        ctypes.memmove(address, probe, MT_KEY_BYTES)
        ctypes.c_int.from_address(address + MT_KEY_BYTES).value = MT_KEY_WORDS
        name, key, position, has_gauss, _ = numpy_random.get_state()
        if name == "MT19937" and key.astype("<u4").tobytes() == probe and position == MT_KEY_WORDS and not has_gauss:
            return address
    except Exception:  # noqa: BLE001 - any surprise means: reseed through numpy
        pass
    return None


WARM_UP_SCRIPT = """
import numpy as np
import pandas as pd

def main():
    values = np.array([1, 2, 3, 4, 5])
    df = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.5, 6.0]})
    return {"mean": float(np.mean(values)), "sum": int(df["a"].sum()), "rows": df.to_dict(orient="records")}
"""


def warm_up():
    """Runs the server's own small pandas and numpy workload once.

    pandas and numpy initialise much lazily (submodules, dtype and method
    caches) on first use. The server does it once, before it forks, so that
    executions do not each pay for it. It is fixed code of the server's,
    never user code, and leaves no module or source lines behind, so every
    execution still starts from a state no execution touched.
    """
    import harness
    import linecache

    try:
        import pandas as pd

        df = pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.5, 6.0], "c": ["x", "y", "z"]})
        float(df["b"].mean()), df.groupby("c")["a"].sum().to_dict(), df.describe().to_dict()
    except Exception:  # noqa: BLE001 - a warm-up that fails only costs speed
        pass
    report = harness.run(WARM_UP_SCRIPT)
    json.dumps(report, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    sys.modules.pop(harness.MODULE_NAME, None)
    linecache.cache.pop(harness.SCRIPT_FILENAME, None)


def warm_up_charts():
    """Imports matplotlib.pyplot and draws one chart, for a chart server.

    A script's first chart costs most of its time in importing pyplot and in
    what the first drawing sets up (the font list, the first font's glyphs,
    Agg's renderer); a server that has done both forks processes that draw at
    once. The font list is the read-only one built at install, linked into
    this jail's own cache directory as the harness links it for a script.
    Every font file it opened is closed again (its cache cleared): a forked
    process must not share an open file's offset with its siblings. Like
    warm_up, it runs fixed code of the server's, and leaves no figure open.
    """
    import io

    import harness

    harness.MatplotlibHooks.link_fonts()
    import matplotlib.font_manager
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame({"x": range(1000), "y": [i * i for i in range(1000)]})
    axes = frame.plot(x="x", y="y", title="warm-up")
    axes.figure.savefig(io.BytesIO(), format="png")
    plt.close("all")
    matplotlib.font_manager._get_font.cache_clear()
    gc.collect()
    left_open = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + fd)
        except OSError:
            continue  # the listing's own descriptor, closed already
        if target.startswith("/") and not target.startswith("/dev/"):
            left_open.append(target)
    if left_open:
        sys.exit("the chart warm-up left files open: %s" % ", ".join(sorted(left_open)))


def release_file_pages():
    """Unmaps the file pages the server mapped while importing.

    Importing numpy and pandas ran code and read data of many files, and the
    server keeps those pages mapped (about 25 MiB of its resident memory)
    though it runs none of that code again. A forked process does not get
    them (the kernel copies no page table entry of a file mapping that has
    no private copy of a page); it maps what it uses from the page cache,
    where the pages stay. Only mappings that cannot be written and hold no
    private page are released, so nothing of the server's state is lost:
    what it touches again is mapped again from the same file.
    """
    unused = []
    with open("/proc/self/smaps") as smaps:
        mapping = None
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                # A mapping's first line: start-end perms offset dev inode [path].
                start, end = (int(x, 16) for x in fields[0].split("-"))
                mapping = (start, end, fields[1], fields[5] if len(fields) > 5 else "")
            elif fields[0] == "Anonymous:" and mapping is not None:
                start, end, perms, path = mapping
                if path.startswith("/") and "w" not in perms and fields[1] == "0":
                    unused.append((start, end))
    for start, end in unused:
        libc.madvise(start, end - start, MADV_DONTNEED)


def main():
    if os.getpid() != 1:
        # fork_into_namespaces relies on it; see there.
        sys.exit("the fork server must be pid 1 of its jail")
    with open(CONFIG_FILE) as f:
        config = json.load(f)
    config["uid"], config["gid"] = os.getuid(), os.getgid()
    # When memory runs short, the kernel kills the likeliest processes
    # first: the server and every process it forks (which inherit this) go
    # before the service. Raising one's own score needs no privilege.
    write_file("/proc/self/oom_score_adj", "%d\n" % OOM_SCORE_ADJ)
    bpf = bytes.fromhex(config["seccomp"])
    sys.path.insert(0, HARNESS_DIR)
    import harness  # noqa: F401 - imported once here, shared by every fork
    import session  # noqa: F401 - likewise, for sessions' processes

    for name in ("numpy", "pandas"):
        try:
            __import__(name)
        except ImportError:
            pass
    sys.path.remove(HARNESS_DIR)
    warm_up()
    if config.get("charts"):
        warm_up_charts()
    global numpy_state
    numpy_state = numpy_state_address()
    # Objects that exist now are never collected again, so forked processes
    # do not copy the pages the collector would otherwise touch.
    gc.collect()
    gc.freeze()
    release_file_pages()
    control = socket.socket(fileno=CONTROL_FD)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    control.send(b"ready")
    serve(control, wake_r, config, bpf)


def serve(control, wake_r, config, bpf):
    """The server's loop: fork on request, reap, report each process's end."""
    poller = select.poll()
    poller.register(control, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    waiting = {}  # execution pid -> status socket

    def report(sock, wstatus):
        try:
            if os.WIFSIGNALED(wstatus):
                sock.send(b"signal %d" % os.WTERMSIG(wstatus))
            else:
                sock.send(b"exit %d" % os.WEXITSTATUS(wstatus))
        except OSError:
            pass  # the executor gave up on it
        sock.close()

    while True:
        for fd, _ in poller.poll():
            if fd == wake_r:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                while True:
                    try:
                        pid, wstatus = os.waitpid(-1, os.WNOHANG)
                    except ChildProcessError:
                        break
                    if pid == 0:
                        break
                    sock = waiting.pop(pid, None)
                    if sock is not None:
                        report(sock, wstatus)
                continue
            msg, fds, _, _ = socket.recv_fds(control, 16, 5)
            if not msg:
                os._exit(0)  # the executor is gone
            if msg == b"ping":
                control.send(b"pong")  # the executor's watchdog: still answering
                continue
            if msg not in (b"fork", b"session") or len(fds) != 5:
                for fd in fds:
                    os.close(fd)
                continue
            try:
                pid = fork_into_namespaces()
            except OSError as exc:
                with socket.socket(fileno=fds[4]) as sock:
                    sock.send(("error %s" % exc).encode("utf-8", "replace")[:4000])
                for fd in fds[:4]:
                    os.close(fd)
                continue
            if pid == 0:
                try:
                    os.close(signal.set_wakeup_fd(-1))
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    os.close(wake_r)
                    child(fds, config, bpf, msg == b"session")
                finally:
                    os._exit(126)
            # Registered before the loop reaps anything: its end cannot be missed.
            waiting[pid] = socket.socket(fileno=fds[4])
            for fd in fds[:4]:
                os.close(fd)


if __name__ == "__main__":
    main()
