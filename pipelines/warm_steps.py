"""Local steps started from a warm process: torch, transformers and the KFP executor imported once per run.

kfp.local's subprocess runner starts every step as a new Python process, and each step that loads a model paid
for importing torch, transformers and the Trainer again (about 5 s on a 2-core machine, a quarter of the demo's
wall time). Here one server process per run imports them once; every step is then a `fork` of it, so each step
still runs in a process of its own (fresh state, its own exit status, output in the run log) and a step's pod on a
cluster, which imports what it uses, is unchanged.

A step takes the warm path when it is a KFP lightweight Python component (the only kind kfp.local's subprocess
runner runs); a step whose environment differs from the server's first starts a new server in it (settings that
libraries read at import time would otherwise be stale). A step that cannot (the server is gone) starts a fresh
process, as kfp.local does, and the run log says why.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

#: What the model steps import (generation, training, evaluation), imported once by the server.
PRELOAD = (
    "torch",
    "kfp.dsl.executor_main",
    "transformers.modeling_utils",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    "transformers.models.llama.modeling_llama",
    "transformers.generation.utils",
    "transformers.trainer",
    "peft",
)
EXECUTOR_MODULE = "kfp.dsl.executor_main"
_STATUS = struct.Struct("!i")


def lightweight_component(full_command: Sequence[str]) -> tuple[str, list[str]] | None:
    """(component source, executor arguments) of a KFP lightweight Python component's command, as KFP's
    `component_factory` writes it (`sh -ec '<write $0 to a file; python3 -m kfp.dsl.executor_main ...>' <source>
    <args>`); None for any other command."""
    if len(full_command) < 4 or list(full_command[:2]) != ["sh", "-ec"]:
        return None
    script = full_command[2]
    if f"-m {EXECUTOR_MODULE}" not in script or '"$program_path/ephemeral_component.py"' not in script:
        return None
    return full_command[3], list(full_command[4:])


def _send(sock: socket.socket, payload: dict, fds: Sequence[int] = ()) -> None:
    data = json.dumps(payload).encode()
    socket.send_fds(sock, [struct.pack("!I", len(data)) + data], list(fds))


def _receive(sock: socket.socket) -> tuple[dict, list[int]]:
    head, fds, _, _ = socket.recv_fds(sock, 4, 4)
    if len(head) < 4:
        raise EOFError("the client hung up")
    (size,) = struct.unpack("!I", head)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the client hung up")
        data += chunk
    return json.loads(data), fds


def _run_step(request: dict, output_fd: int) -> int:
    """In the forked child: become the step's process and run KFP's executor on the component."""
    os.dup2(output_fd, 1)
    os.dup2(output_fd, 2)
    os.close(output_fd)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ["_KFP_RUNTIME"] = "true"
    program = Path(tempfile.mkdtemp()) / "ephemeral_component.py"
    program.write_text(request["source"])
    sys.argv = [EXECUTOR_MODULE, "--component_module_path", str(program), *request["args"]]
    import runpy

    try:
        runpy.run_module(EXECUTOR_MODULE, run_name="__main__", alter_sys=True)
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # the step's own failure: print it as a fresh process would, and fail
        traceback.print_exc()
        return 1


def serve(path: str, parent: int) -> None:
    """The server: listen first (clients queue while the imports run), import PRELOAD, then fork a child per
    request. Children are reaped by the kernel (SIGCHLD ignored here, restored in each child). It ends when asked,
    or when the run that started it (process `parent`) is gone."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    for name in PRELOAD:
        with contextlib.suppress(ImportError):  # a missing optional library is imported (and reported) by its step
            importlib.import_module(name)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the steps; the run ends the server itself
    listener.settimeout(1.0)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the run was killed without stopping its server
                return
            continue
        try:
            request, fds = _receive(conn)
        except (EOFError, OSError, ValueError):
            conn.close()
            continue
        if request.get("stop"):
            conn.close()
            return
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = 1
            try:
                code = _run_step(request, fds[0])
            finally:
                with contextlib.suppress(BaseException):
                    sys.stdout.flush()
                    sys.stderr.flush()
                    conn.sendall(_STATUS.pack(code))
                os._exit(code & 0xFF if code >= 0 else 1)
        for fd in fds:
            os.close(fd)
        conn.close()


class WarmSteps:
    """The client side, owned by one local run: starts the server, runs steps through it, stops it."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="star-steps-")
        self.socket_path = os.path.join(self._dir, "server.sock")
        self._log = os.path.join(self._dir, "server.log")
        #: Why the last step did not take the warm path (None: it did).
        self.cold_reason: str | None = None
        self._start(dict(os.environ))

    def _start(self, env: dict[str, str]) -> None:
        """A server in environment `env`."""
        self.env = env
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        with open(self._log, "wb") as log:
            self._server = subprocess.Popen(
                [sys.executable, "-m", "pipelines.warm_steps", self.socket_path, str(os.getpid())],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    def _server_gone(self) -> str:
        try:
            with open(self._log, encoding="utf-8", errors="replace") as log:
                tail = log.read().strip().splitlines()[-1:]
        except OSError:
            tail = []
        return f"the step server ended (exit status {self._server.returncode}{': ' + tail[0] if tail else ''})"

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        for _ in range(600):  # the server binds its socket within a fraction of a second of starting
            try:
                sock.connect(self.socket_path)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                if self._server.poll() is not None:
                    return None
                time.sleep(0.05)
        return None

    def run(self, full_command: Sequence[str], env_vars: Mapping[str, str] | None = None) -> int | None:
        """Run the step's command in a fork of the server, printing its output line by line as kfp.local does;
        its exit status, or None when this command cannot take the warm path (run it as a new process).

        A step whose environment differs from the server's (variables that libraries read when imported) gets a
        new server in its environment first."""
        component = lightweight_component(full_command)
        if component is None:
            self.cold_reason = "not a lightweight Python component"
            return None
        env = {**os.environ, **(env_vars or {})}
        changed = sorted(k for k in set(env) | set(self.env) if env.get(k) != self.env.get(k))
        if changed:
            print(f"(the step server starts again: the environment changed ({', '.join(changed)}))")
            self._stop()
            self._start(env)
        self.cold_reason = self._server_gone() if self._server.poll() is not None else None
        if self.cold_reason is not None:
            return None
        sock = self._connect()
        if sock is None:
            self.cold_reason = self._server_gone() if self._server.poll() is not None else "no answer from the server"
            return None
        read_fd, write_fd = os.pipe()
        with sock:
            source, args = component
            _send(sock, {"source": source, "args": args, "env": env, "cwd": os.getcwd()}, [write_fd])
            os.close(write_fd)
            with os.fdopen(read_fd, encoding="utf-8", errors="replace") as output:
                for line in output:
                    print(line, end="")
            print("\n")  # kfp.local's separation after a step's output
            status = b""
            while len(status) < _STATUS.size and (chunk := sock.recv(_STATUS.size - len(status))):
                status += chunk
        if len(status) < _STATUS.size:
            print("the step's process ended without an exit status (killed?)")
            return 1
        return _STATUS.unpack(status)[0]

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _stop(self) -> None:
        if self._server.poll() is None:
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(self.socket_path)
                _send(sock, {"stop": True})
            try:
                self._server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()


@contextlib.contextmanager
def warm_subprocess_steps() -> Iterator[WarmSteps]:
    """For the duration: kfp.local's subprocess runner starts lightweight-component steps from a warm server."""
    from kfp.local import subprocess_task_handler as handler

    steps = WarmSteps()
    cold = handler.run_local_subprocess

    def run_local_subprocess(full_command: list[str], env_vars: dict[str, str] | None = None) -> int:
        code = steps.run(full_command, env_vars)
        if code is None:
            print(f"(this step starts as a new process: {steps.cold_reason})")
            return cold(full_command=full_command, env_vars=env_vars)
        return code

    handler.run_local_subprocess = run_local_subprocess
    try:
        yield steps
    finally:
        handler.run_local_subprocess = cold
        steps.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
