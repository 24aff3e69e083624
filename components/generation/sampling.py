"""What every generation backend shares and no step needs torch for: the sampling settings and the cut at
the task's stop strings. Kept free of torch and transformers, so the run configuration (which every step
parses) loads in a fraction of a second."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

#: The highest sampling temperature every backend takes (vLLM refuses more).
MAX_TEMPERATURE = 2.0


class SamplingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_samples: int = Field(1, ge=1)
    #: 0: greedy (every sample of a question is the same completion).
    temperature: float = Field(0.0, ge=0.0, le=MAX_TEMPERATURE)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    seed: int = 0


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = len(text)
    for s in stop:
        k = text.find(s)
        if k != -1:
            cut = min(cut, k)
    return text[:cut]
