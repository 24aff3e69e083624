"""A step's numbers on its KFP `Metrics` output."""

import json
from collections.abc import Mapping
from pathlib import Path

from kfp.dsl import Metrics


def log_metrics(metrics: Metrics, values: Mapping[str, float]) -> None:
    """Each value logged on the artifact (what the Kubeflow UI shows) and written as JSON to the artifact's own
    file. The file matters: kfp.local's cache treats a recorded output whose file is missing as broken, so
    without it a resumed run would redo every step that reports metrics."""
    for key, value in values.items():
        metrics.log_metric(key, value)
    path = Path(metrics.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(values), indent=1))
