"""The sandbox launcher: the first program of every agent process. It asks the kernel to fence
the process in, reports what it set up on a descriptor of its own, then replaces itself with
the bootstrap (`execve`), so no agent code ever shares a process image with ctypes.

Started by `controller/clients/harness.py` as `python -I -S -B launcher.py CONFIG` (CONFIG is
a marshalled dict in hex: the run's directory, the paths it may read, the memory limit, the
report descriptor, the program to exec, whether a missing protection refuses the run; marshal
and hex because json would cost every run 14 ms of imports). In order:

1. niceness 10 (agents yield the CPU to the controller), `PR_SET_PDEATHSIG` (SIGKILL when the
   controller dies);
2. new user, network and IPC namespaces (no interface but a loopback that is down, no System V
   IPC shared with the host);
3. `PR_SET_NO_NEW_PRIVS`, then Landlock: reads only the interpreter, its standard library
   (without ctypes and the test modules), the system's shared libraries and the run's
   directory; writes only in the run's directory; TCP bind and connect refused (ABI 4+);
   signals and abstract UNIX sockets scoped to the sandbox (ABI 6+);
4. a seccomp filter: no sockets at all, no new processes (threads only), no namespaces, mount,
   ptrace, keyctl, bpf, io_uring, perf or kernel modules; signals only to itself; and `execve`
   only with a 64-bit value this launcher drew and passes in an argument the kernel ignores,
   so only this one exec is allowed and the bootstrap, which never sees the value, cannot exec;
5. the report, `key<TAB>value` lines, then the descriptor is closed (the agent cannot write
   to it);
6. `RLIMIT_AS`, `RLIMIT_FSIZE`, `RLIMIT_CORE` 0, `RLIMIT_NOFILE`, and the exec.

When `require` is set and a protection cannot be had (no Landlock, user namespaces disabled),
it reports `refused` with the reason and exits 3 without running anything. `probe` applies
everything, reports and exits 0 (the controller's check at start). Standard library only; runs
as its own script, never imported by the controller.
"""

from __future__ import annotations

import ctypes
import marshal
import os
import resource
import stat
import struct
import sys

TYPE_CHECKING = False  # (typing costs an agent's start 5 ms: only the type checker reads it)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

NICENESS = 10
FILE_LIMIT = 64 * 1024 * 1024
SCRATCH_BYTES = 64 * 1024 * 1024  # the run's whole working directory (a tmpfs: memory)
OPEN_FILES = 256
CPU_SLACK = 5  # CPU seconds past the run's timeout before the kernel ends it (RLIMIT_CPU)
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_SET_MDWE = 1, 38, 22, 65
PR_MDWE_REFUSE_EXEC_GAIN = 1
SECCOMP_MODE_FILTER = 2
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
NOBODY = 65534  # the agent's user and group inside its user namespace
FIRST_UNKNOWN_SYSCALL = 447  # newer calls (memfd_secret, fchmodat2, mseal...) get ENOSYS
CLONE_NEWNS, CLONE_NEWTIME, CLONE_NEWCGROUP = 0x00020000, 0x00000080, 0x02000000
CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER = 0x04000000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET, CLONE_THREAD = 0x20000000, 0x40000000, 0x00010000
NEW_NAMESPACES = (CLONE_NEWNS | CLONE_NEWTIME | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC
                  | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)
EPERM, ENOSYS = 1, 38

# Landlock (include/uapi/linux/landlock.h); the syscalls have one number on every architecture.
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_DIR, FS_REMOVE_FILE, FS_MAKE_DIR, FS_MAKE_REG = 1 << 4, 1 << 5, 1 << 7, 1 << 8
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
READ_ONLY = FS_READ_FILE | FS_READ_DIR | FS_EXECUTE
READ_WRITE = (FS_READ_FILE | FS_READ_DIR | FS_WRITE_FILE | FS_TRUNCATE | FS_MAKE_REG
              | FS_MAKE_DIR | FS_REMOVE_FILE | FS_REMOVE_DIR | FS_REFER)
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV

# seccomp: BPF over struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6];}
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_JSET_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
OFFSET_NR, OFFSET_ARCH, OFFSET_ARGS = 0, 4, 16
ARCHES: dict[str, dict[str, Any]] = {
    "x86_64": {"audit": 0xC000003E, "x32": True, "clone": 56, "clone3": 435, "execve": 59,
               "prlimit64": 302, "prctl": 157,
               "signals": {"kill": 62, "tgkill": 234, "rt_tgsigqueueinfo": 297,
                           "rt_sigqueueinfo": 129},
               "denied": {"socket": 41, "socketpair": 53, "fork": 57, "vfork": 58,
                          "execveat": 322, "tkill": 200, "pidfd_send_signal": 424,
                          "pidfd_open": 434, "pidfd_getfd": 438, "ptrace": 101,
                          "process_vm_readv": 310, "process_vm_writev": 311, "unshare": 272,
                          "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
                          "chroot": 161, "open_tree": 428, "move_mount": 429, "fsopen": 430,
                          "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
                          "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
                          "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
                          "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246,
                          "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
                          "delete_module": 176, "open_by_handle_at": 304,
                          "name_to_handle_at": 303, "reboot": 169, "swapon": 167,
                          "swapoff": 168, "acct": 163, "quotactl": 179, "memfd_create": 319,
                          "modify_ldt": 154, "chmod": 90, "fchmod": 91, "fchmodat": 268,
                          "chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260,
                          "utime": 132, "utimes": 235, "futimesat": 261, "utimensat": 280,
                          "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190,
                          "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199}},
    "aarch64": {"audit": 0xC00000B7, "x32": False, "clone": 220, "clone3": 435, "execve": 221,
                "prlimit64": 261, "prctl": 167,
                "signals": {"kill": 129, "tgkill": 131, "rt_tgsigqueueinfo": 240,
                            "rt_sigqueueinfo": 138},
                "denied": {"socket": 198, "socketpair": 199, "execveat": 281, "tkill": 130,
                           "pidfd_send_signal": 424, "pidfd_open": 434, "pidfd_getfd": 438,
                           "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
                           "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
                           "pivot_root": 41, "chroot": 51, "open_tree": 428, "move_mount": 429,
                           "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
                           "mount_setattr": 442, "keyctl": 219, "add_key": 217,
                           "request_key": 218, "bpf": 280, "perf_event_open": 241,
                           "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426,
                           "io_uring_register": 427, "kexec_load": 104, "kexec_file_load": 294,
                           "init_module": 105, "finit_module": 273, "delete_module": 106,
                           "open_by_handle_at": 265, "name_to_handle_at": 264, "reboot": 142,
                           "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60,
                           "memfd_create": 279, "fchmod": 52, "fchmodat": 53, "fchownat": 54,
                           "fchown": 55, "utimensat": 88, "setxattr": 5, "lsetxattr": 6,
                           "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
                           "fremovexattr": 16}},
}
REQUIRED = ("namespaces", "landlock", "seccomp")


class Unavailable(Exception):
    """The kernel would not give this protection; the message says why."""


def main() -> int:
    config = marshal.loads(bytes.fromhex(sys.argv[1]))
    report_fd = int(config["report_fd"])
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    report, missing = _apply(libc, config)
    magic = report.pop("_magic", None)  # the exec's key: never written anywhere
    refused = bool(config.get("require")) and [m for m in missing if m in REQUIRED]
    if refused:
        report["refused"] = "; ".join(f"{name}: {report[name]}" for name in refused)
    report["sandbox"] = "incomplete" if missing else "complete"
    if missing:
        report["missing"] = ", ".join(missing)
    os.write(report_fd, "".join(f"{key}\t{value}\n" for key, value in report.items()).encode())
    os.close(report_fd)
    if refused:
        return 3
    if config.get("probe"):
        return 0
    memory = int(config["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    cpu = int(config["timeout"]) + CPU_SLACK
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    _exec(libc, config["argv"], config["env"], magic)
    return 4  # (not reached: _exec raises when the exec fails)


def _apply(libc: Any, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    report: dict[str, Any] = {}
    missing: list[str] = []
    os.nice(NICENESS)
    report["cpu"] = f"niceness {os.getpriority(os.PRIO_PROCESS, 0)}"
    report["memory"] = f"RLIMIT_AS {int(config['memory_bytes'])} bytes"
    report["files"] = (f"RLIMIT_FSIZE {FILE_LIMIT} bytes, RLIMIT_NOFILE {OPEN_FILES}, "
                       "no core dumps")
    report["cpu_time"] = f"RLIMIT_CPU {int(config['timeout']) + CPU_SLACK} s"
    if libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0) == 0:
        report["parent_death"] = "SIGKILL when the controller dies"
    steps: tuple[tuple[str, Callable[[], str]], ...] = (
        ("namespaces", lambda: _namespaces(libc, config["write"][0])),
        ("landlock", lambda: _landlock(libc, config)),
        ("seccomp", lambda: _seccomp(libc, report)))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        report["no_new_privs"] = f"refused: {_errno()}"
    for name, step in steps:
        try:
            report[name] = step()
        except Unavailable as exc:
            report[name] = f"not applied: {exc}"
            missing.append(name)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) == 0:
        report["memory_exec"] = "no memory may become executable (PR_SET_MDWE)"
    return report, missing


def _errno() -> str:
    return os.strerror(ctypes.get_errno())


def _namespaces(libc: Any, scratch: str) -> str:
    """New user, network, IPC and mount namespaces; the run's working directory becomes a
    tmpfs of its own there (size-capped, noexec: nothing written can be run or mapped)."""
    flags = CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(flags) != 0:
        raise Unavailable(f"unshare(user, network, ipc, mount) refused: {_errno()}")
    try:  # itself as `nobody` inside: no capability survives the exec
        for name, line in (("setgroups", "deny"), ("uid_map", f"{NOBODY} {uid} 1"),
                           ("gid_map", f"{NOBODY} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as mapping:
                mapping.write(line)
    except OSError as exc:
        raise Unavailable(f"the user namespace's id map was refused: {exc}") from None
    if libc.mount(b"p38-run", scratch.encode(), b"tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  f"size={SCRATCH_BYTES},mode=0700".encode()) != 0:
        raise Unavailable(f"mounting the run's tmpfs refused: {_errno()}")
    os.chdir(scratch)  # the tmpfs, not the folder under it
    return (f"new user (itself as nobody, no capability), network (no interface up), IPC "
            f"and mount namespaces; the working directory a "
            f"{SCRATCH_BYTES // (1024 * 1024)} MiB noexec tmpfs")


def _landlock(libc: Any, config: dict[str, Any]) -> str:
    abi = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                       ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    if abi < 1:
        raise Unavailable(f"the kernel offers no Landlock ({_errno()})")
    fs = (1 << 13) - 1  # ABI 1: execute .. make_sym
    fs |= FS_REFER if abi >= 2 else 0
    fs |= FS_TRUNCATE if abi >= 3 else 0
    fs |= FS_IOCTL_DEV if abi >= 5 else 0
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    attr = ctypes.create_string_buffer(struct.pack("<QQQ", fs, net, scoped)[:size], size)
    ruleset = libc.syscall(SYS_LANDLOCK_CREATE_RULESET, attr, ctypes.c_size_t(size),
                           ctypes.c_uint32(0))
    if ruleset < 0:
        raise Unavailable(f"landlock_create_ruleset refused: {_errno()}")
    try:
        for path in config["read"]:
            _allow(libc, ruleset, path, READ_ONLY & fs)
        for path in config.get("list", ()):
            _allow(libc, ruleset, path, FS_READ_DIR & fs)
        for path in config.get("code", ()):
            _allow(libc, ruleset, path, (FS_READ_FILE | FS_READ_DIR) & fs)
        for path in config["write"]:
            _allow(libc, ruleset, path, READ_WRITE & fs)
        for path in config.get("devices", ()):
            _allow(libc, ruleset, path, (FS_READ_FILE | FS_WRITE_FILE) & fs)
        if libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset),
                        ctypes.c_uint32(0)) != 0:
            raise Unavailable(f"landlock_restrict_self refused: {_errno()}")
    finally:
        os.close(ruleset)
    parts = [f"ABI {abi}", "reads: the interpreter, its standard library without ctypes, "
             "shared libraries, the run's directory",
             "writes: the run's directory"]
    parts.append("TCP bind and connect refused" if net else "no TCP rules (ABI < 4)")
    parts.append("signals and abstract sockets scoped" if scoped else "no scoping (ABI < 6)")
    return "; ".join(parts)


def _allow(libc: Any, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path this machine does not have needs no rule
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            access &= FILE_RIGHTS
        rule = ctypes.create_string_buffer(struct.pack("<Qi", access, fd), 12)
        if libc.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
                        ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), rule,
                        ctypes.c_uint32(0)) != 0:
            raise Unavailable(f"landlock_add_rule({path}) refused: {_errno()}")
    finally:
        os.close(fd)


def _seccomp(libc: Any, report: dict[str, Any]) -> str:
    arch = ARCHES.get(os.uname().machine)
    if arch is None:
        raise Unavailable(f"no syscall table for {os.uname().machine}")
    magic = 0
    while magic >> 32 == 0 or magic & 0xFFFFFFFF == 0:
        magic = int.from_bytes(os.urandom(8), "little")
    program = _filter(arch, magic, os.getpid())
    code = b"".join(struct.pack("<HBBI", *instruction) for instruction in program)
    filters = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("<HxxxxxxQ", len(program), ctypes.addressof(filters))
    fprog_buffer = ctypes.create_string_buffer(fprog, len(fprog))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog_buffer, 0, 0) != 0:
        raise Unavailable(f"the seccomp filter was refused: {_errno()}")
    report["_magic"] = magic
    return (f"{len(program)} instructions: no sockets, no processes (threads only), "
            "no namespaces, mount, ptrace, keyctl, bpf, io_uring, memfd; no chmod, chown, "
            "utime or xattr; signals and prlimit to itself only; the parent-death signal "
            "kept; no exec after the sandbox's own; syscalls newer than it knows refused; "
            f"denied: {len(arch['denied'])} syscalls")


def _filter(arch: dict[str, Any], magic: int, pid: int) -> list[tuple[int, int, int, int]]:
    """The BPF program. Each rule is `jeq nr` then a body that ends in `ret`; a rule that does
    not match jumps over its body, so the accumulator still holds the syscall number."""
    errno, enosys = RET_ERRNO | EPERM, RET_ERRNO | ENOSYS
    program = [(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH), (BPF_JEQ_K, 1, 0, arch["audit"]),
               (BPF_RET_K, 0, 0, RET_KILL_PROCESS), (BPF_LD_W_ABS, 0, 0, OFFSET_NR)]
    if arch["x32"]:
        program += [(BPF_JGE_K, 0, 1, 0x40000000), (BPF_RET_K, 0, 0, errno)]
    program += [(BPF_JGE_K, 0, 1, FIRST_UNKNOWN_SYSCALL), (BPF_RET_K, 0, 0, enosys)]

    def rule(nr: int, body: list[tuple[int, int, int, int]]) -> None:
        program.append((BPF_JEQ_K, 0, len(body), nr))
        program.extend(body)

    def arg_equals(index: int, value: int) -> list[tuple[int, int, int, int]]:
        low, high = OFFSET_ARGS + 8 * index, OFFSET_ARGS + 8 * index + 4
        return [(BPF_LD_W_ABS, 0, 0, low), (BPF_JEQ_K, 0, 3, value & 0xFFFFFFFF),
                (BPF_LD_W_ABS, 0, 0, high), (BPF_JEQ_K, 0, 1, value >> 32),
                (BPF_RET_K, 0, 0, RET_ALLOW), (BPF_RET_K, 0, 0, errno)]

    for nr in arch["denied"].values():
        rule(nr, [(BPF_RET_K, 0, 0, errno)])
    rule(arch["clone3"], [(BPF_RET_K, 0, 0, enosys)])  # flags unreadable: libc falls back
    rule(arch["clone"], [(BPF_LD_W_ABS, 0, 0, OFFSET_ARGS), (BPF_JSET_K, 2, 0, NEW_NAMESPACES),
                         (BPF_JSET_K, 0, 1, CLONE_THREAD), (BPF_RET_K, 0, 0, RET_ALLOW),
                         (BPF_RET_K, 0, 0, errno)])
    rule(arch["execve"], arg_equals(3, magic))
    for nr in arch["signals"].values():
        rule(nr, arg_equals(0, pid))
    rule(arch["prlimit64"], [(BPF_LD_W_ABS, 0, 0, OFFSET_ARGS + 4),  # pid 0 or its own
                             (BPF_JEQ_K, 0, 3, 0), (BPF_LD_W_ABS, 0, 0, OFFSET_ARGS),
                             (BPF_JEQ_K, 2, 0, 0), (BPF_JEQ_K, 1, 0, pid),
                             (BPF_RET_K, 0, 0, errno), (BPF_RET_K, 0, 0, RET_ALLOW)])
    rule(arch["prctl"], [(BPF_LD_W_ABS, 0, 0, OFFSET_ARGS),  # the parent-death signal stays
                         (BPF_JEQ_K, 0, 1, PR_SET_PDEATHSIG), (BPF_RET_K, 0, 0, errno),
                         (BPF_RET_K, 0, 0, RET_ALLOW)])
    program.append((BPF_RET_K, 0, 0, RET_ALLOW))
    return program


def _exec(libc: Any, argv: list[str], env: dict[str, str], magic: int | None) -> None:
    """execve(argv[0], argv, env) with `magic` as its fourth argument (ignored by execve,
    read by the seccomp filter)."""
    arch = ARCHES.get(os.uname().machine)
    if magic is None or arch is None:
        os.execve(argv[0], argv, env)
    args = (ctypes.c_char_p * (len(argv) + 1))(*[a.encode() for a in argv], None)
    pairs = [f"{k}={v}".encode() for k, v in env.items()]
    envp = (ctypes.c_char_p * (len(pairs) + 1))(*pairs, None)
    libc.syscall(ctypes.c_long(arch["execve"]), argv[0].encode(), args, envp,
                 ctypes.c_uint64(magic))
    raise OSError(ctypes.get_errno(), f"execve {argv[0]}: {_errno()}")


if __name__ == "__main__":
    sys.exit(main())
