import io

from pipelines.run_log import ConsoleFilter

SAMPLE = """13:26:15.930 - INFO - Executing task \x1b[96m'generate-op'\x1b[0m
13:26:15.930 - INFO - Streamed logs:

    [KFP Executor 2026-11-23 13:26:16,021 INFO]: Got executor_input:
    {
        "inputs": {
            "parameterValues": {"settings": "{}"}
        }
    }
    iteration 1 · generate ▕████▏ 100%  16/16  5.2 q/s  eta 0s
    /x/modeling_utils.py:3303: FutureWarning: deprecated
    iteration 1: generation solved 3/16 training questions
13:27:09.502 - INFO - Task 'generate-op' finished with status SUCCESS
13:27:09.502 - INFO - Task 'generate-op' outputs:
    attempts: Dataset( name='attempts',
                       metadata={} )
--------------------------------------------------------------------------------
"""


def test_console_keeps_tasks_and_step_lines_and_log_keeps_everything() -> None:
    log, console = io.StringIO(), io.StringIO()
    f = ConsoleFilter(log, console)
    for chunk in (SAMPLE[:100], SAMPLE[100:]):  # writes split mid-line
        f.write(chunk)
    assert log.getvalue() == SAMPLE
    shown = console.getvalue().splitlines()
    assert shown == [
        "13:26:15.930 - INFO - Executing task \x1b[96m'generate-op'\x1b[0m",
        "    iteration 1 · generate ▕████▏ 100%  16/16  5.2 q/s  eta 0s",
        "    iteration 1: generation solved 3/16 training questions",
        "13:27:09.502 - INFO - Task 'generate-op' finished with status SUCCESS",
    ]


def test_parallel_tasks_printing_at_once_leave_a_readable_log(tmp_path) -> None:
    """kfp.local runs a ParallelFor's tasks in threads; their progress lines (with `·` and `▕█▏`) must reach
    run.log whole and as valid UTF-8."""
    import threading

    from pipelines.run_log import tee_to_log

    console, log = tee_to_log(tmp_path / "run.log")
    console.console = io.StringIO()
    line = "    iteration 1 · generate shard {} ▕████▏ {}%\n"

    def task(shard: int) -> None:
        for i in range(3000):
            print(line.format(shard, i), end="", file=console)

    threads = [threading.Thread(target=task, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    lines = (tmp_path / "run.log").read_text(encoding="utf-8").splitlines(keepends=True)
    assert sorted(lines) == sorted(line.format(s, i) for s in range(4) for i in range(3000))
