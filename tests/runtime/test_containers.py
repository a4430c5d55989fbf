"""runtime.containers: real processes on this machine, without network namespaces (no root,
no network change).

Covered: the environment, working directory and log files a process gets; exit codes (a death
by signal N is 128+N); `terminate` (SIGTERM seen by the process, SIGKILL after the grace for a
process that ignores it, the rest of the process group killed); start errors with the OS error;
the `ip netns exec` prefix and its exec-failure report, with a stand-in `ip` script; the fake
runner's validation.

Conventions: each process is a `python3 -c` script. A script that must be running before the
test acts reports "ready" over a loopback connection to a `Beacon`, so the test waits on that
event, never on a sleep. Every process started is killed by PID in a finally (`started`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from clusterip.runtime.containers import (
    ProcessSpec,
    RealProcess,
    RealProcessRunner,
    StartError,
    exit_code,
)
from clusterip.testing.clock import FakeClock
from clusterip.testing.fakes_runtime import FakeProcessRunner

pytestmark = pytest.mark.anyio

PY = sys.executable
DEADLINE = 10.0


class Beacon:
    """A loopback server that scripts report lines to; `line()` waits for the next one."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Beacon:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while line := await reader.readline():
            await self.lines.put(line.decode().strip())
        writer.close()

    def release(self) -> None:
        """Send one byte to every script (a script blocked in `beacon.recv(1)` goes on)."""
        for writer in self.writers:
            writer.write(b"x")

    async def line(self) -> str:
        with anyio.fail_after(DEADLINE):
            return await self.lines.get()

    def script(self, body: str) -> str:
        """`body` after a prelude that connects `beacon` (a socket) to this server; `say(text)`
        sends a line."""
        prelude = textwrap.dedent(f"""\
            import os, signal, socket, subprocess, sys, time
            beacon = socket.create_connection(("127.0.0.1", {self.port}))
            def say(text):
                beacon.sendall((text + "\\n").encode())
            """)
        return prelude + textwrap.dedent(body)


class Started:
    """The processes a test started; all killed (their groups, by PID) at the end."""

    def __init__(self, runner: RealProcessRunner) -> None:
        self.runner = runner
        self.processes: list[RealProcess] = []
        self.extra_pids: list[int] = []

    async def start(self, spec: ProcessSpec) -> RealProcess:
        proc = await self.runner.start(spec)
        self.processes.append(proc)
        return proc

    async def close(self) -> None:
        for pid in self.extra_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self.processes:
            proc.kill()
            with anyio.fail_after(DEADLINE), contextlib.suppress(StartError):
                await proc.wait()


@pytest.fixture
async def started() -> AsyncIterator[Started]:
    s = Started(RealProcessRunner(clock=FakeClock(mono=42.0)))
    try:
        yield s
    finally:
        await s.close()


def spec(tmp_path: Path, script: str, **kwargs: object) -> ProcessSpec:
    fields: dict[str, object] = {
        "argv": (PY, "-c", script),
        "env": {"HOSTNAME": "web-1"},
        "stdout_path": tmp_path / "logs" / "out.log",
        "stderr_path": tmp_path / "logs" / "err.log",
    }
    fields.update(kwargs)
    return ProcessSpec(**fields)  # type: ignore[arg-type]


async def gone(pid: int) -> None:
    """Wait (event-driven, through a pidfd) until process `pid` has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    exited = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, exited.set)
    try:
        with anyio.fail_after(DEADLINE):
            await exited.wait()
    finally:
        loop.remove_reader(fd)
        os.close(fd)


# --- running and exiting ---------------------------------------------------------------------


async def test_exit_code_logs_env_and_cwd(started: Started, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    script = """
        import os, sys
        print("out", os.environ["HOSTNAME"], os.environ["GREETING"], os.getcwd())
        print("path", os.environ["PATH"])
        print("err", file=sys.stderr)
        sys.exit(3)
    """
    s = spec(tmp_path, textwrap.dedent(script), cwd=str(work),
             env={"HOSTNAME": "web-1", "GREETING": "hi"})
    proc = await started.start(s)
    assert proc.started_at == 42.0
    with anyio.fail_after(DEADLINE):
        assert await proc.wait() == 3
    out = (tmp_path / "logs" / "out.log").read_text().splitlines()
    assert out == [f"out web-1 hi {work}",
                   "path /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert (tmp_path / "logs" / "err.log").read_text() == "err\n"


async def test_one_log_for_both_streams_appends_across_runs(started: Started,
                                                            tmp_path: Path) -> None:
    log = tmp_path / "main" / "0.log"
    script = "import sys; print('to out', flush=True); print('to err', file=sys.stderr)"
    for _ in range(2):
        proc = await started.start(spec(tmp_path, script, stdout_path=log, stderr_path=log))
        with anyio.fail_after(DEADLINE):
            assert await proc.wait() == 0
    assert log.read_text() == "to out\nto err\n" * 2


async def test_a_path_of_its_own_wins(started: Started, tmp_path: Path) -> None:
    script = "import os; print(os.environ['PATH'])"
    proc = await started.start(spec(tmp_path, script, env={"PATH": "/opt/bin"}))
    with anyio.fail_after(DEADLINE):
        await proc.wait()
    assert (tmp_path / "logs" / "out.log").read_text() == "/opt/bin\n"


async def test_death_by_signal_reads_as_128_plus_n(started: Started, tmp_path: Path) -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    proc = await started.start(spec(tmp_path, script))
    with anyio.fail_after(DEADLINE):
        assert await proc.wait() == 137
    assert exit_code(-15) == 143
    assert exit_code(2) == 2


async def test_kill(started: Started, tmp_path: Path) -> None:
    async with Beacon() as beacon:
        proc = await started.start(spec(tmp_path, beacon.script("""
            say("ready")
            while True:
                time.sleep(60)
        """)))
        assert await beacon.line() == "ready"
        proc.kill()
        with anyio.fail_after(DEADLINE):
            assert await proc.wait() == 137


# --- terminate -----------------------------------------------------------------------------------


async def test_terminate_sigterm_is_seen_by_the_process(started: Started,
                                                        tmp_path: Path) -> None:
    mark = tmp_path / "term"
    async with Beacon() as beacon:
        proc = await started.start(spec(tmp_path, beacon.script(f"""
            def term(signum, frame):
                open({str(mark)!r}, "w").write("SIGTERM")
                sys.exit(0)
            signal.signal(signal.SIGTERM, term)
            say("ready")
            while True:
                signal.pause()
        """)))
        assert await beacon.line() == "ready"
        waiter = asyncio.ensure_future(proc.wait())
        with anyio.fail_after(DEADLINE):
            assert await proc.terminate(30) == 0
            assert await waiter == 0
    assert mark.read_text() == "SIGTERM"


async def test_terminate_without_a_handler_is_143(started: Started, tmp_path: Path) -> None:
    async with Beacon() as beacon:
        proc = await started.start(spec(tmp_path, beacon.script("""
            say("ready")
            while True:
                time.sleep(60)
        """)))
        assert await beacon.line() == "ready"
        with anyio.fail_after(DEADLINE):
            assert await proc.terminate(30) == 143


async def test_sigkill_after_the_grace_when_sigterm_is_ignored(started: Started,
                                                               tmp_path: Path) -> None:
    async with Beacon() as beacon:
        proc = await started.start(spec(tmp_path, beacon.script("""
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            say("ready")
            while True:
                time.sleep(60)
        """)))
        assert await beacon.line() == "ready"
        begun = time.monotonic()
        with anyio.fail_after(DEADLINE):
            assert await proc.terminate(0.3) == 137
        assert time.monotonic() - begun >= 0.3


async def test_the_process_group_goes_with_its_leader(started: Started, tmp_path: Path) -> None:
    """A child left behind in the group is killed when the main process exits, and a
    terminated one takes its children with it."""
    body = """
        child = subprocess.Popen(["sleep", "1000"])
        say(str(child.pid))
        beacon.recv(1)
        {end}
    """
    async with Beacon() as beacon:
        leader = await started.start(spec(tmp_path, beacon.script(body.format(end="pass"))))
        orphan = int(await beacon.line())
        started.extra_pids.append(orphan)
        assert os.getpgid(orphan) == leader.pid
        beacon.release()  # the leader exits 0, its sleeping child with it
        with anyio.fail_after(DEADLINE):
            assert await leader.wait() == 0
        await gone(orphan)

        other = await started.start(spec(tmp_path, beacon.script(body.format(end=""))))
        child = int(await beacon.line())
        started.extra_pids.append(child)
        assert os.getpgid(child) == other.pid
        with anyio.fail_after(DEADLINE):
            assert await other.terminate(5) == 143
        await gone(child)


# --- start errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(("no-such-program-cipt",),
                 'exec: "no-such-program-cipt": No such file or directory', id="not-in-path"),
    pytest.param(("/no/such/program",), 'exec: "/no/such/program": No such file or directory',
                 id="no-such-path"),
    pytest.param((), "no command to run", id="empty-argv"),
])
async def test_start_error(started: Started, tmp_path: Path, argv: tuple[str, ...],
                           message: str) -> None:
    with pytest.raises(StartError, match=message.replace("(", r"\(")):
        await started.start(spec(tmp_path, "", argv=argv))


async def test_start_error_not_executable(started: Started, tmp_path: Path) -> None:
    program = tmp_path / "prog"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o644)
    with pytest.raises(StartError, match=f'exec: "{program}": Permission denied'):
        await started.start(spec(tmp_path, "", argv=(str(program),)))


async def test_start_error_missing_working_directory(started: Started, tmp_path: Path) -> None:
    with pytest.raises(StartError, match='chdir "/no/such/dir"'):
        await started.start(spec(tmp_path, "pass", cwd="/no/such/dir"))


# --- the network namespace prefix (with a stand-in `ip`) --------------------------------------


def fake_ip(tmp_path: Path, body: str) -> str:
    """An `ip` that takes `netns exec <name> argv...` and runs `body` with argv in "$@"."""
    path = tmp_path / "ip"
    path.write_text(f'#!/bin/sh\n[ "$1 $2" = "netns exec" ] || exit 99\nshift 3\n{body}\n')
    path.chmod(0o755)
    return str(path)


async def test_netns_prefix(tmp_path: Path) -> None:
    ip = fake_ip(tmp_path, 'echo "in $NS_SEEN"; exec "$@"')
    runner = Started(RealProcessRunner(ip=ip))
    try:
        s = spec(tmp_path, "import sys; print('ran'); sys.exit(4)", netns="cipt-pod",
                 env={"NS_SEEN": "cipt-pod"})
        assert s.command(ip)[:4] == [ip, "netns", "exec", "cipt-pod"]
        proc = await runner.start(s)
        with anyio.fail_after(DEADLINE):
            assert await proc.wait() == 4
        assert (tmp_path / "logs" / "out.log").read_text() == "in cipt-pod\nran\n"
    finally:
        await runner.close()


async def test_netns_exec_failure_is_a_start_error(tmp_path: Path) -> None:
    """`ip netns exec` that cannot exec the program exits with its message on stderr."""
    ip = fake_ip(tmp_path, 'echo "exec of \\"$1\\" failed: Exec format error" >&2; exit 1')
    runner = Started(RealProcessRunner(ip=ip))
    try:
        log = tmp_path / "logs" / "err.log"
        log.parent.mkdir()
        log.write_text('exec of "true" failed: an older run, not this one\n')
        proc = await runner.start(spec(tmp_path, "", argv=("true",), netns="cipt-pod"))
        with anyio.fail_after(DEADLINE), pytest.raises(
                StartError, match='exec: "true": Exec format error'):
            await proc.wait()
    finally:
        await runner.close()


async def test_netns_missing_program_refused_before_ip_runs(tmp_path: Path) -> None:
    ip = fake_ip(tmp_path, "touch ran; exit 0")
    runner = RealProcessRunner(ip=ip)
    with pytest.raises(StartError, match='exec: "no-such-program-cipt": No such file'):
        await runner.start(spec(tmp_path, "", argv=("no-such-program-cipt",), netns="x"))
    with pytest.raises(StartError, match="Permission denied"):
        await runner.start(spec(tmp_path, "", argv=(str(tmp_path),), netns="x"))
    assert not (tmp_path / "ran").exists()


# --- the fake runner --------------------------------------------------------------------------


async def test_fake_runner_validates_and_scripts_exits(tmp_path: Path) -> None:
    runner = FakeProcessRunner(FakeClock(mono=7.0))
    with pytest.raises(StartError, match="no command"):
        await runner.start(ProcessSpec(argv=()))
    with pytest.raises(StartError, match="absolute"):
        await runner.start(ProcessSpec(argv=("sleep",), cwd="rel"))
    runner.fail_start("nosuch")
    with pytest.raises(StartError, match='exec: "nosuch": No such file or directory'):
        await runner.start(ProcessSpec(argv=("nosuch",)))

    proc = await runner.start(ProcessSpec(argv=("server",)))
    assert proc.started_at == 7.0
    assert (await runner.started(0)) is proc
    proc.exit(2)
    assert await proc.wait() == 2

    stubborn = await runner.start(ProcessSpec(argv=("server",)))
    stubborn.ignores_sigterm = True
    assert await stubborn.terminate(0.01) == 137
    assert stubborn.signals == ["SIGTERM", "SIGKILL"]
    polite = await runner.start(ProcessSpec(argv=("server",)))
    assert await polite.terminate(30) == 143
    assert runner.running() == []

    runner.fail_exec("script")
    broken = await runner.start(ProcessSpec(argv=("script",)))
    with pytest.raises(StartError, match='exec: "script"'):
        await broken.wait()
