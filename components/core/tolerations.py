"""A Kubernetes toleration: lets a pod onto nodes with a matching taint (GPU and TPU node pools). The same model
serves the pipeline's step placement and the pods of a multi-node training job."""

from __future__ import annotations

from typing import Literal

from components.core.strict import Strict


class Toleration(Strict):
    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = "NoSchedule"
