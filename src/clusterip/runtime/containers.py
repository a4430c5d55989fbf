"""A container's process: start it, learn of its exit from the process itself, stop it.

How it works. `RealProcessRunner.start(spec)` runs `spec.argv` with
`asyncio.create_subprocess_exec`, in a session (and so a process group) of its own, with stdin
from /dev/null and stdout/stderr appended to the log files of the spec (opened for the start and
closed right after: the child holds its own descriptors, so a container outlives neither more
nor less than its files, and never dies of a broken pipe when the agent restarts). With
`spec.netns` the command becomes `ip netns exec <netns> argv...`: `ip` enters the pod's network
namespace (and bind-mounts `/etc/netns/<netns>/resolv.conf` over `/etc/resolv.conf` in a mount
namespace of its own) and then *execs* the program, so the PID is the program's.

The environment is `PATH` (`core.pods.BASE_PATH`) under `spec.env`: the caller passes what the
container declares plus `HOSTNAME`, and a `PATH` of its own wins.

Start failures. A command that cannot start raises `StartError` with the OS error, worded
`exec: "<program>": <strerror>` (the program was not found, is not executable, the working
directory is missing). Without a namespace Python reports these from the child before `start`
returns. With one, the program is exec'd by `ip` after `ip` itself started, so `start` first
looks the program up the way `execvp` will (the spec's PATH, relative to its cwd) and refuses
what is not there; anything that still fails inside `ip` (a script whose interpreter is missing,
say) shows as `ip` exiting with `exec of "<program>" failed: <strerror>` on stderr, which
`wait()` finds at the end of the stderr log and raises as the same `StartError`.

Exits and stopping. `RunningProcess.wait()` is the process's own exit (the event loop's child
watcher), never a poll; a death by signal N reads as exit code 128+N, as Kubernetes reports it.
`terminate(grace)` sends SIGTERM to the process group, waits up to `grace` seconds, then sends
SIGKILL to the group. When the main process has ended, whatever else is left in its group is
killed (SIGKILL), as a container's processes die with its init.

A caveat of process groups: a child that starts a session of its own leaves the group, and is
not signalled here; the agent removes the pod's namespace with every process in it at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import shutil
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from clusterip.clock import Clock, SystemClock
from clusterip.core.errors import ClusterIPError
from clusterip.core.pods import BASE_PATH

__all__ = [
    "ProcessRunner",
    "ProcessSpec",
    "RealProcessRunner",
    "RunningProcess",
    "StartError",
    "check_spec",
    "exit_code",
]

log = logging.getLogger(__name__)

# What `ip netns exec` prints when it cannot exec the program (iproute2 lib/exec.c).
_IP_EXEC_FAILED = re.compile(r'^exec of "(?P<program>.*)" failed: (?P<error>.+)$', re.MULTILINE)
# How much of the stderr log's end `wait()` reads for it (ip prints one short line).
_IP_EXEC_TAIL = 4096
# execvp's search path when PATH is unset (glibc's default).
_DEFAULT_EXEC_PATH = "/bin:/usr/bin"


class StartError(ClusterIPError):
    """The container's command could not start; the message is the OS error."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessSpec:
    """What to run for one run of a container.

    Attributes:
        argv: the command and its arguments, already expanded (no `ip netns exec` prefix: the
            runner adds it when `netns` is set).
        env: the container's environment (its `env`, the service variables, `HOSTNAME`); the
            runner puts `PATH=BASE_PATH` under it.
        cwd: the working directory (`workingDir`, or "/").
        stdout_path: the file stdout is appended to (None: /dev/null).
        stderr_path: the file stderr is appended to (may be `stdout_path`: one interleaved log).
        netns: the network namespace to run in (None: the agent's own).
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/"
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    netns: str | None = None

    def environment(self) -> dict[str, str]:
        """The process's whole environment."""
        return {"PATH": BASE_PATH, **self.env}

    def command(self, ip: str = "ip") -> list[str]:
        """The argv to exec: `argv`, behind `ip netns exec <netns>` when `netns` is set."""
        if self.netns:
            return [ip, "netns", "exec", self.netns, *self.argv]
        return list(self.argv)


def check_spec(spec: ProcessSpec) -> None:
    """Refuse a spec that no runner can start (the fake runner applies the same checks).

    Raises:
        StartError: no command, an empty program name, or a working directory that is not
            absolute.
    """
    if not spec.argv:
        raise StartError("no command to run: clusterip runs a container's command on the node, "
                         "not its image; give the container a command")
    if not spec.argv[0]:
        raise StartError('exec: "": empty program name')
    if not spec.cwd.startswith("/"):
        raise StartError(f'chdir "{spec.cwd}": the working directory must be an absolute path')


def exit_code(returncode: int) -> int:
    """An exit status as Kubernetes reports it: death by signal N is 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def _exec_message(program: str, error: str) -> str:
    return f'exec: "{program}": {error}'


def _lookup_error(program: str, path: str | None, cwd: str) -> int | None:
    """The errno `execvp(program)` would fail with, None if it would find a program.

    Mirrors glibc: a name with a `/` is taken as is (relative to `cwd`); a bare name is searched
    in PATH; a match that cannot be executed gives EACCES unless a later one can, none ENOENT.
    """
    if "/" in program:
        candidates = [os.path.join(cwd, program)]
    else:
        dirs = (path if path is not None else _DEFAULT_EXEC_PATH).split(":")
        candidates = [os.path.join(cwd, d or ".", program) for d in dirs]
    denied = False
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return None
        if os.path.exists(candidate):
            denied = True
    return errno.EACCES if denied else errno.ENOENT


class RunningProcess(Protocol):
    """A started container process."""

    @property
    def pid(self) -> int: ...

    @property
    def started_at(self) -> float:
        """When it started (the runner's clock, monotonic seconds)."""
        ...

    async def wait(self) -> int:
        """Wait for it to exit; returns the exit code (128+N for a death by signal N).

        Raises:
            StartError: it never started (`ip netns exec` could not exec the program).
        """
        ...

    async def terminate(self, grace_seconds: float) -> int:
        """SIGTERM to its group, SIGKILL after `grace_seconds`; returns the exit code."""
        ...

    def kill(self) -> None:
        """SIGKILL to its group, now (`wait()` reports the exit)."""
        ...


class ProcessRunner(Protocol):
    async def start(self, spec: ProcessSpec) -> RunningProcess:
        """Start one run of a container.

        Raises:
            StartError: the command cannot start (the message is the OS error).
        """
        ...


class RealProcessRunner:
    """Runs container processes on this machine (see the module docstring).

    Args:
        clock: for `started_at` (monotonic).
        ip: the `ip` program, resolved in the agent's own PATH once (a container's PATH may
            not have it).
    """

    def __init__(self, *, clock: Clock | None = None, ip: str = "ip") -> None:
        self._clock: Clock = clock or SystemClock()
        self._ip = shutil.which(ip) or ip

    async def start(self, spec: ProcessSpec) -> RealProcess:
        check_spec(spec)
        env = spec.environment()
        program = spec.argv[0]
        if spec.netns:
            # `ip` execs the program after it has started: find out now what execvp will say.
            err = _lookup_error(program, env.get("PATH"), spec.cwd)
            if err is not None:
                raise StartError(_exec_message(program, os.strerror(err)))
        stdout = stderr = -1
        try:
            stdout = _open_log(spec.stdout_path)
            stderr = stdout if spec.stderr_path == spec.stdout_path else _open_log(
                spec.stderr_path)
            offset = os.fstat(stderr).st_size if spec.stderr_path is not None else 0
            proc = await asyncio.create_subprocess_exec(
                *spec.command(self._ip),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=spec.cwd,
                env=env,
                start_new_session=True,
            )
        except StartError:
            raise
        except OSError as exc:
            if exc.filename is not None and exc.filename == spec.cwd:
                raise StartError(f'chdir "{spec.cwd}": {exc.strerror}') from exc
            raise StartError(_exec_message(program, exc.strerror or str(exc))) from exc
        finally:
            for fd in {stdout, stderr} - {-1}:
                os.close(fd)
        log.debug("process started pid=%d argv=%s netns=%s", proc.pid, spec.argv, spec.netns)
        return RealProcess(proc, spec, started_at=self._clock.monotonic(), stderr_offset=offset)


def _open_log(path: Path | None) -> int:
    """A descriptor appending to `path` (created, with its folder), or /dev/null."""
    if path is None:
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StartError(f'open log "{path}": {exc.strerror}') from exc


class RealProcess:
    """A process started by `RealProcessRunner`; the leader of its own process group."""

    def __init__(self, proc: asyncio.subprocess.Process, spec: ProcessSpec, *,
                 started_at: float, stderr_offset: int) -> None:
        self._proc = proc
        self._spec = spec
        self._started_at = started_at
        self._stderr_offset = stderr_offset
        self._group_ended = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def started_at(self) -> float:
        return self._started_at

    @property
    def returncode(self) -> int | None:
        """The exit code once it has exited (128+N for signal N), else None."""
        code = self._proc.returncode
        return None if code is None else exit_code(code)

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id is the leader's PID. While the leader is unreaped the id cannot be
        # reused, and after that only by a new group leader: signals go to our group only.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    def _end_group(self) -> None:
        """Once the leader has exited: kill whatever else is left in its group, once."""
        if not self._group_ended:
            self._group_ended = True
            self._signal_group(signal.SIGKILL)

    async def wait(self) -> int:
        code = await self._proc.wait()
        self._end_group()
        if code != 0 and self._spec.netns:
            failure = self._exec_failure()
            if failure is not None:
                raise StartError(failure)
        return exit_code(code)

    def _exec_failure(self) -> str | None:
        """The OS error `ip netns exec` printed if it could not exec the program, else None."""
        path = self._spec.stderr_path
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                f.seek(self._stderr_offset)
                tail = f.read(_IP_EXEC_TAIL).decode(errors="replace")
        except OSError:
            return None
        for match in _IP_EXEC_FAILED.finditer(tail):
            if match.group("program") == self._spec.argv[0]:
                return _exec_message(self._spec.argv[0], match.group("error").strip())
        return None

    async def terminate(self, grace_seconds: float) -> int:
        if self._proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                async with asyncio.timeout(max(grace_seconds, 0.0)):
                    await self._proc.wait()
            except TimeoutError:
                log.info("process ignored SIGTERM, killing pid=%d grace=%s", self.pid,
                         grace_seconds)
                self._signal_group(signal.SIGKILL)
        code = await self._proc.wait()
        self._end_group()
        return exit_code(code)

    def kill(self) -> None:
        if self._proc.returncode is None:
            self._signal_group(signal.SIGKILL)
