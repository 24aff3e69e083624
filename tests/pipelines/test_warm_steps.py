"""Local steps forked from a warm server: same results, exit status and output as a new process, less start-up.

No `from __future__ import annotations` here: KFP reads the components' annotations as types."""

import os
from pathlib import Path

import pytest
from kfp import dsl, local

from pipelines.warm_steps import lightweight_component, warm_subprocess_steps


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def whoami(marker: str) -> str:
    import os
    import sys

    print(f"step output {marker}")
    return f"{os.getppid()} {'torch' in sys.modules} {os.environ.get('STAR_TEST_MARK', '-')} {os.getcwd()}"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fails() -> str:
    raise ValueError("this step fails on purpose")


@pytest.fixture
def kfp_local(tmp_path: Path) -> Path:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=True)
    return tmp_path


def test_a_step_runs_in_a_fork_of_the_server_with_torch_already_imported(
    kfp_local: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(kfp_local)
    with warm_subprocess_steps() as steps:
        parent, preloaded, _, cwd = whoami(marker="one").output.split()
        again = whoami(marker="two").output.split()[0]
        server = str(steps._server.pid)
    assert parent == server and again == server, steps.cold_reason  # every step is its own fork of the server
    assert preloaded == "True"
    assert Path(cwd) == kfp_local
    assert "step output one" in capsys.readouterr().out  # the step's output is printed as kfp.local prints it


def test_a_step_whose_environment_differs_from_the_servers_gets_a_server_in_its_environment(
    kfp_local: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with warm_subprocess_steps() as steps:
        first = steps._server.pid
        monkeypatch.setenv("STAR_TEST_MARK", "changed")  # libraries imported by the server may have read the old one
        parent, preloaded, mark, _ = whoami(marker="three").output.split()
        again = whoami(marker="four").output.split()[0]
        server = steps._server.pid
    assert server != first and parent == again == str(server)  # one new server, then used as before
    assert preloaded == "True" and mark == "changed"
    assert "the step server starts again: the environment changed (STAR_TEST_MARK)" in capsys.readouterr().out


def test_a_failing_step_fails_the_run_with_its_traceback(kfp_local: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with warm_subprocess_steps(), pytest.raises(RuntimeError):
        fails()
    assert "ValueError: this step fails on purpose" in capsys.readouterr().out


def test_the_server_stops_with_the_run() -> None:
    with warm_subprocess_steps() as steps:
        server = steps._server
    assert server.poll() is not None
    assert not os.path.exists(steps.socket_path)


def test_a_step_says_why_it_starts_as_a_new_process_when_the_server_is_gone(
    kfp_local: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with warm_subprocess_steps() as steps:
        steps._server.kill()
        steps._server.wait()
        assert whoami(marker="five").output.split()[1] == "False"  # ran, in a new process
    assert "this step starts as a new process: the step server ended (exit status -9" in capsys.readouterr().out


def test_only_kfp_lightweight_components_take_the_warm_path() -> None:
    command = ["sh", "-ec", 'program_path=$(mktemp -d)\nprintf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
               '_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main --component_module_path '
               '"$program_path/ephemeral_component.py" "$@"\n', "def f(): pass", "--executor_input", "{}"]
    assert lightweight_component(command) == ("def f(): pass", ["--executor_input", "{}"])
    assert lightweight_component(["python3", "-m", "kfp.dsl.executor_main"]) is None
    assert lightweight_component(["sh", "-ec", "echo hi", "x"]) is None


def test_the_server_ends_when_its_run_is_killed(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    # a run (here: a plain Python process) starts a server and is then killed without stopping it
    code = ("import time; from pipelines.warm_steps import WarmSteps; s = WarmSteps(); "
            "print(s._server.pid, flush=True); time.sleep(600)")
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    server = int(run.stdout.readline())  # type: ignore[union-attr]
    run.send_signal(signal.SIGKILL)
    run.wait()
    for _ in range(300):  # it notices within a second of its imports (seconds, more on a busy machine)
        try:
            os.kill(server, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{server}/stat") as stat:  # gone but not yet reaped by init counts as ended
            if stat.read().split()[2] == "Z":
                return
        time.sleep(0.2)
    raise AssertionError("the step server outlived its run by a minute")
