"""A CPU training step's passes run side by side: each on its own share of the cores, gradients summed in order.

On a CPU a step's rows go through in passes of at most `CPU_MICRO_BATCH_TOKENS` padded tokens (the activation
memory of a pass, not of the step). A pass of a small model is many small operations, and splitting each of them
over all cores pays a synchronisation per operation; two passes at a time, each on half the cores, keep the cores
busier (benchmarks/RESULTS.md, "Design choices"). Each pass's gradients are taken with `torch.autograd.grad`
and added up in pass order, so a step's update does not depend on which pass finished first: the same inputs
give the same weights.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

Batch = dict[str, torch.Tensor]


def split_passes(batch: Batch, rows: int) -> list[Batch]:
    """The step's right-padded batch in passes of `rows` rows, each cut to its own longest row."""
    passes = []
    for start in range(0, batch["input_ids"].shape[0], rows):
        mask = batch["attention_mask"][start : start + rows]
        width = int(mask.sum(dim=1).max())
        passes.append({name: value[start : start + rows, :width] for name, value in batch.items()})
    return passes


class ConcurrentPasses:
    """Runs a step's passes `workers` at a time, each on `threads` intra-op threads."""

    def __init__(self, rows_per_pass: int, workers: int, threads: int) -> None:
        self.rows, self.workers, self.threads = rows_per_pass, workers, threads
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="train-pass", initializer=torch.set_num_threads,
                                        initargs=(threads,))

    def run(self, model: torch.nn.Module, batch: Batch, loss_of: Callable[[Batch], torch.Tensor]) -> torch.Tensor:
        """Forward and backward of every pass of `batch`; each pass's gradients are added to the parameters'
        `.grad` in pass order. Returns the sum of the passes' losses (each already scaled to the step)."""
        params = [p for p in model.parameters() if p.requires_grad]

        def one(part: Batch) -> tuple[torch.Tensor, tuple[torch.Tensor | None, ...]]:
            loss = loss_of(part)
            return loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)

        results = list(self._pool.map(one, split_passes(batch, self.rows)))
        for k, param in enumerate(params):
            for _, grads in results:
                grad = grads[k]
                if grad is None:
                    continue
                if param.grad is None:
                    param.grad = grad
                else:
                    param.grad.add_(grad)
        return torch.stack([loss for loss, _ in results]).sum()

    def close(self) -> None:
        self._pool.shutdown()
