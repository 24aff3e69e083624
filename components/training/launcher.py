"""Starts the training workers over the GPUs of this pod (`torchrun` or `deepspeed`) and waits for them.

    torchrun --standalone --nnodes 1 --nproc_per_node N -m components.training.worker --spec SPEC
    deepspeed --num_gpus N --master_port P --no_local_rank --module components.training.worker --spec SPEC

On a machine without GPUs the very same commands run N CPU ranks: DeepSpeed's CPU accelerator
(`DS_ACCELERATOR=cpu`) over gloo. With more than one node, `launch` hands over to a TrainJob / PyTorchJob whose
pods run `job_worker_command` (see `components.training.job_manifests`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.core.errors import StarError
from components.core.signals import terminate_raises
from components.training.deepspeed_config import DistributedConfig
from components.training.job_manifests import WORKER_MODULE
from components.training.worker import WorkerResult, WorkerSpec, read_result, write_text

if TYPE_CHECKING:
    from components.training.job_manifests import JobSettings



def gpus_in_pod() -> int:
    from components.core.devices import visible_gpus

    return visible_gpus()


def resolve_nproc(cfg: DistributedConfig, gpus: int | None = None) -> int:
    """Processes per node: the configured number, else one per GPU, else 1 (CPU)."""
    if cfg.nproc_per_node is not None:
        return cfg.nproc_per_node
    return max(1, gpus_in_pod() if gpus is None else gpus)


def _script(name: str) -> list[str]:
    """The console script `name` of this interpreter's environment (a venv need not be on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    module = {"torchrun": "torch.distributed.run", "deepspeed": "deepspeed.launcher.runner"}[name]
    return [sys.executable, "-m", module]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def worker_command(cfg: DistributedConfig, spec_path: str, nproc: int, master_port: int | None = None) -> list[str]:
    """The command that starts `nproc` workers on this pod."""
    if cfg.launcher == "torchrun":
        return [*_script("torchrun"), "--standalone", "--nnodes", "1", "--nproc_per_node", str(nproc),
                "-m", WORKER_MODULE, "--spec", spec_path]
    if cfg.launcher == "deepspeed":
        port = master_port if master_port is not None else free_port()
        return [*_script("deepspeed"), "--num_gpus", str(nproc), "--master_port", str(port), "--no_local_rank",
                "--module", WORKER_MODULE, "--spec", spec_path]
    raise ValueError("launcher 'none' trains in the step's own process; there is no command to start")


def worker_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the launched processes: this one, the project on PYTHONPATH, and DeepSpeed's CPU
    accelerator where there is no GPU."""
    env = dict(os.environ if base is None else base)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if gpus_in_pod() == 0:
        env.setdefault("DS_ACCELERATOR", "cpu")
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the launcher and every worker it started (they share its process group)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_local(
    cfg: DistributedConfig, spec: WorkerSpec, workdir: str | Path, gpus: int | None = None
) -> WorkerResult:
    """Train with `cfg.launcher` over this pod's GPUs (or CPU ranks); returns rank 0's result."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    Path(spec.result).unlink(missing_ok=True)  # only this run's rank 0 may write it
    spec_path = workdir / "worker_spec.json"
    write_text(str(spec_path), spec.model_dump_json())
    nproc = resolve_nproc(cfg, gpus)
    cmd = worker_command(cfg, str(spec_path), nproc)
    print(f"{spec.label}: {cfg.launcher} over {nproc} process(es), DeepSpeed ZeRO-{cfg.zero_stage}", flush=True)
    with terminate_raises():
        proc = subprocess.Popen(cmd, env=worker_env(), start_new_session=True)
        try:
            code = proc.wait()
        finally:
            _stop(proc)
    if code != 0:
        raise StarError(
            f"Distributed training failed: {cfg.launcher} exited with code {code}; the failing rank's error is "
            f"in the lines above."
        )
    try:
        return read_result(spec.result)
    except FileNotFoundError as e:
        raise StarError(f"Distributed training ended without a result from rank 0 ({spec.result}).") from e


def launch(
    cfg: DistributedConfig,
    spec: WorkerSpec,
    workdir: str | Path,
    *,
    job: JobSettings | None = None,
    client: Any = None,
) -> WorkerResult:
    """Train as `cfg` says: over this pod's GPUs (`nodes == 1`) or through a TrainJob / PyTorchJob over
    `cfg.nodes` nodes (`job` then says which image, placement and Secrets its pods get)."""
    if cfg.launcher == "none":
        raise ValueError("launcher 'none' trains in the step's own process (components.train)")
    if cfg.nodes == 1:
        return run_local(cfg, spec, workdir)
    if job is None:
        raise ValueError("training on several nodes needs the job's image and placement (JobSettings)")
    from components.training.trainjob import train_on_nodes

    return train_on_nodes(cfg, spec, job, client=client)
