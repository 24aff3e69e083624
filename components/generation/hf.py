"""Batched generation with transformers.

- The shared few-shot prefix is encoded once per call and its keys and values are held once, for all rows
  (`prefix_attention`); the rows' own keys and values go to a cache preallocated once per call
  (`kv_slots.SlotCache`), which every batch of the call reuses.
- Questions are bucketed by length (sorted), so a batch holds prompts of similar length and little padding.
- Each question is left-padded between the prefix and itself; position ids follow the padding, so a padded row
  computes exactly what it would alone.
- Decoding is our own loop over forward calls (`decoding.decode_batch`): rows leave the batch as they finish
  (stop string, end of text, token limit) and stop strings are checked on the new token only. Greedy outputs are
  `model.generate`'s; sampling is seeded per batch.
- Greedy with `num_samples` > 1 decodes each question once and repeats the completion.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache, PreTrainedModel

from components.core.progress import ProgressLine
from components.core.seeds import batch_seed
from components.generation.decoding import decode_batch
from components.generation.kv_slots import SlotCache
from components.generation.sampling import SamplingConfig, cut_at_stop
from components.generation.stops import StopWatch


class HFGenerator:
    def __init__(self, model: PreTrainedModel, tokenizer: object, batch_size: int = 32) -> None:
        self.model = model
        self.tok = tokenizer
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        self._watches: dict[tuple[str, ...], StopWatch] = {}

    def _encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] if text else []  # type: ignore[operator]

    def _watch(self, stop: Sequence[str]) -> StopWatch:
        key = tuple(stop)
        if key not in self._watches:
            self._watches[key] = StopWatch(self.tok, key)
        return self._watches[key]

    @torch.inference_mode()
    def _prefix_cache(self, prefix_ids: list[int]) -> DynamicCache | None:
        if not prefix_ids:
            return None
        cache = DynamicCache()
        ids = torch.tensor([prefix_ids], device=self.device)
        self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
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
        if not questions:
            return []
        greedy = sampling.temperature == 0
        n = 1 if greedy else sampling.num_samples  # greedy samples are all the same completion
        prefix_ids = self._encode(prefix)
        # The prefix's last token goes with each question, so every prompt has a token to start from.
        cached, lead = prefix_ids[:-1], prefix_ids[-1:]
        encoded = [lead + self._encode(q) for q in questions]
        order = sorted(range(len(questions)), key=lambda i: len(encoded[i]))
        per_batch = max(1, self.batch_size // n)
        rows = min(per_batch, len(questions)) * n
        cache = SlotCache(self.model.config.get_text_config().num_hidden_layers, rows,
                          len(encoded[order[-1]]) + sampling.max_new_tokens)
        prefix_cache = self._prefix_cache(cached)
        if prefix_cache is not None:
            cache.put_prefix(prefix_cache)
        watch = self._watch(stop)
        pad = self.tok.pad_token_id  # type: ignore[attr-defined]
        eos = self.tok.eos_token_id  # type: ignore[attr-defined]
        pad = pad if pad is not None else (eos if eos is not None else 0)
        results: list[list[str]] = [[] for _ in questions]
        bar = ProgressLine(label, len(questions), unit="q")
        for b, start in enumerate(range(0, len(order), per_batch)):
            idx = order[start : start + per_batch]
            generator = None
            if not greedy:
                generator = torch.Generator(device=self.device).manual_seed(batch_seed(sampling.seed, b))
            prompts = [encoded[i] for i in idx for _ in range(n)]
            new = decode_batch(self.model, cache, prompts, sampling, watch, eos, pad, generator)
            texts = self.tok.batch_decode(new, skip_special_tokens=True)  # type: ignore[attr-defined]
            for j, text in enumerate(texts):
                completion = cut_at_stop(text, stop)
                results[idx[j // n]].extend([completion] * (sampling.num_samples if greedy else 1))
            bar.update(len(idx))
        return results
