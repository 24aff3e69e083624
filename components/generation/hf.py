"""Batched generation with transformers.

- The shared few-shot prefix is encoded once; its KV cache is copied into every batch.
- Questions are bucketed by length (sorted), so a batch holds prompts of similar length and little padding.
- Each question is left-padded between the prefix and itself; position ids follow the attention mask, so a
  padded row computes exactly what it would alone.
- Generation stops at the task's stop strings or end of text; sampling is seeded per batch.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel, StoppingCriteria, StoppingCriteriaList

from components.core.progress import ProgressLine
from components.core.seeds import batch_seed
from components.generation.sampling import SamplingConfig, cut_at_stop


class StopOnStrings(StoppingCriteria):
    """Stops a row once its *generated* text contains a stop string (HF's `stop_strings` also matches across
    the prompt boundary: a prompt ending in a newline would stop on the first generated newline)."""

    def __init__(self, tokenizer: object, stops: Sequence[str], prompt_length: int, window: int = 16) -> None:
        self.tok, self.stops, self.start, self.window = tokenizer, [s for s in stops if s], prompt_length, window

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        generated = input_ids[:, self.start :]
        tails = self.tok.batch_decode(generated[:, -self.window :], skip_special_tokens=True)  # type: ignore[attr-defined]
        done = [any(s in t for s in self.stops) for t in tails]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class HFGenerator:
    def __init__(self, model: PreTrainedModel, tokenizer: object, batch_size: int = 32) -> None:
        self.model = model
        self.tok = tokenizer
        self.batch_size = batch_size
        self.device = next(model.parameters()).device

    def _encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] if text else []  # type: ignore[operator]

    @torch.inference_mode()
    def _prefix_cache(self, prefix_ids: list[int]) -> DynamicCache | None:
        if not prefix_ids:
            return None
        cache = DynamicCache()
        ids = torch.tensor([prefix_ids], device=self.device)
        self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        return cache

    @torch.inference_mode()
    def generate(
        self,
        prefix: str,
        questions: Sequence[str],
        sampling: SamplingConfig,
        stop: Sequence[str],
        label: str = "generate",
    ) -> list[list[str]]:
        """For each question, `sampling.num_samples` completions (prompt = prefix + question)."""
        prefix_ids = self._encode(prefix)
        cache = self._prefix_cache(prefix_ids)
        encoded = [self._encode(q) for q in questions]
        order = sorted(range(len(questions)), key=lambda i: len(encoded[i]))
        n = sampling.num_samples
        per_batch = max(1, self.batch_size // n)
        results: list[list[str]] = [[] for _ in questions]
        bar = ProgressLine(label, len(questions), unit="q")
        pad = self.tok.pad_token_id  # type: ignore[attr-defined]
        for b, start in enumerate(range(0, len(order), per_batch)):
            idx = order[start : start + per_batch]
            width = max(len(encoded[i]) for i in idx)
            rows, masks = [], []
            for i in idx:
                q = encoded[i]
                fill = width - len(q)
                rows.append(prefix_ids + [pad] * fill + q)
                masks.append([1] * len(prefix_ids) + [0] * fill + [1] * len(q))
            input_ids = torch.tensor(rows, device=self.device).repeat_interleave(n, dim=0)
            attention = torch.tensor(masks, device=self.device).repeat_interleave(n, dim=0)
            kwargs: dict[str, object] = {}
            if cache is not None:
                batch_cache = copy.deepcopy(cache)
                batch_cache.batch_repeat_interleave(input_ids.shape[0])
                kwargs["past_key_values"] = batch_cache
            sample = sampling.temperature > 0
            if sample:
                torch.manual_seed(batch_seed(sampling.seed, b))
                kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
            else:
                kwargs.update(do_sample=False)
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=sampling.max_new_tokens,
                stopping_criteria=StoppingCriteriaList([StopOnStrings(self.tok, stop, input_ids.shape[1])]),
                pad_token_id=pad,
                eos_token_id=self.tok.eos_token_id,  # type: ignore[attr-defined]
                use_cache=True,
                **kwargs,
            )
            new = out[:, input_ids.shape[1] :]
            texts = self.tok.batch_decode(new, skip_special_tokens=True)  # type: ignore[attr-defined]
            for j, text in enumerate(texts):
                results[idx[j // n]].append(cut_at_stop(text, stop))
            bar.update(len(idx))
        return results

