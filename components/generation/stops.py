"""Stopping a generated row at the task's stop strings, matched in the *generated* text only (transformers'
`stop_strings` also matches across the prompt boundary: a prompt ending in a newline would stop on the first
generated newline).

- `StopWatch`, for the hf backend's decoding loop: a step looks only at the rows whose new token can end a stop
  string (tokens whose text holds a stop string's last character, or that decode to nothing readable on their own,
  such as byte pieces), and decodes just those rows' last tokens. Every `sweep` steps all rows are checked, so a
  tokenizer whose pieces do not decode one by one still stops (a few steps late at worst). A row that stops late
  costs only time: completions are cut at the first stop string anyway.
- `StopOnStrings`, the same rule as a `model.generate` stopping criterion (decodes every row at every step).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import StoppingCriteria


def _window(stops: Sequence[str]) -> int:
    """Tokens enough to hold any stop string, even one spelled a byte per token."""
    return max(16, 4 * max((len(s) for s in stops), default=0) + 4)


class StopWatch:
    def __init__(self, tokenizer: object, stops: Sequence[str], sweep: int = 32) -> None:
        self.tok, self.stops, self.sweep = tokenizer, [s for s in stops if s], sweep
        self.window = _window(self.stops)
        self.candidates = self._candidates() if self.stops else torch.zeros(0, dtype=torch.bool)

    def _candidates(self) -> torch.Tensor:
        size = len(self.tok)  # type: ignore[arg-type]
        texts = self.tok.batch_decode([[i] for i in range(size)], skip_special_tokens=False)  # type: ignore[attr-defined]
        ends = {s[-1] for s in self.stops}
        return torch.tensor([not t.strip(" ") or "\ufffd" in t or any(c in t for c in ends) for t in texts],
                            dtype=torch.bool)

    def check(self, tokens: torch.Tensor, steps: int) -> torch.Tensor:
        """Which rows of `tokens` (generated so far, `steps` columns used) hold a stop string in their text."""
        done = torch.zeros(tokens.shape[0], dtype=torch.bool)
        if not self.stops or steps == 0:
            return done
        if steps % self.sweep == 0:
            rows = torch.arange(tokens.shape[0])
            window = self.window + self.sweep
        else:
            new = tokens[:, steps - 1].cpu()
            size = len(self.candidates)
            hit = torch.where(new < size, self.candidates[new.clamp(max=size - 1)], True)
            rows = hit.nonzero().flatten()
            window = self.window
        if len(rows):
            tails = self.tok.batch_decode(tokens[rows, max(0, steps - window) : steps], skip_special_tokens=True)  # type: ignore[attr-defined]
            done[rows] = torch.tensor([any(s in t for s in self.stops) for t in tails])
        return done


class StopOnStrings(StoppingCriteria):
    """Stops a `model.generate` row once its generated text contains a stop string."""

    def __init__(self, tokenizer: object, stops: Sequence[str], prompt_length: int, window: int = 16) -> None:
        self.tok, self.stops, self.start, self.window = tokenizer, [s for s in stops if s], prompt_length, window

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        generated = input_ids[:, self.start :]
        tails = self.tok.batch_decode(generated[:, -self.window :], skip_special_tokens=True)  # type: ignore[attr-defined]
        done = [any(s in t for s in self.stops) for t in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]
