"""The hf backend's decoding loop: one left-padded batch of prompts, decoded token by token with forward calls on
a preallocated KV cache (`kv_slots.SlotCache`) and attention that holds the shared prefix once
(`prefix_attention`), instead of `model.generate`.

What it does per token is what `model.generate` does, minus the general machinery: the next token (greedy
argmax, or temperature and top-p sampling from the batch's generator), end of text, the stop strings (checked
incrementally, `stops.StopWatch`), and position ids and attention masks made from the left padding, so a padded
row computes what it would alone. Rows that finish leave the batch at once, so the remaining steps run on the
live rows only. Greedy outputs equal `model.generate`'s. Sampling draws from the same distribution as
`model.generate(do_sample=True, temperature, top_p, top_k=0)` (no top-k cut) but not with the same random
numbers; it is reproducible for the same rows and generator seed.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from components.generation.kv_slots import SlotCache
from components.generation.prefix_attention import shared_prefix
from components.generation.sampling import SamplingConfig
from components.generation.stops import StopWatch


def sampling_scores(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """Scores to draw the next token from: divided by the temperature, then cut to top-p (the smallest set of
    tokens whose probability reaches `top_p`, as transformers' TopPLogitsWarper; the others get -inf)."""
    scores = logits.float() / sampling.temperature
    if sampling.top_p < 1.0:
        ascending, order = torch.sort(scores, descending=False)
        cumulative = ascending.softmax(-1).cumsum(-1)
        drop = cumulative <= 1 - sampling.top_p
        drop[..., -1:] = False  # keep at least the most likely token
        scores = scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return scores


def next_tokens(logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator | None) -> torch.Tensor:
    """The next token of every row from its last logits: argmax when greedy, else a draw from `sampling_scores`."""
    if sampling.temperature == 0:
        return logits.argmax(-1)
    probs = sampling_scores(logits, sampling).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _prefill_mask(real: torch.Tensor) -> torch.Tensor:
    """`rows × 1 × width × width` over the rows' own positions: each question position sees the real positions
    up to itself; a padding position also sees itself, so no row of the attention is empty (its output is never
    used). The prefix is visible to all of them."""
    width = real.shape[1]
    causal = torch.ones((width, width), dtype=torch.bool, device=real.device).tril()
    mask = real[:, None, :] & causal[None]
    mask[:, torch.arange(width), torch.arange(width)] = True
    return mask[:, None]


@torch.inference_mode()
def decode_batch(
    model: PreTrainedModel,
    cache: SlotCache,
    prompts: list[list[int]],
    sampling: SamplingConfig,
    watch: StopWatch,
    eos: int | None,
    pad: int,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """The generated token ids of each prompt (up to and with the token that ended it). Each prompt continues
    the cache's shared prefix (if any), left-padded to the longest."""
    device = next(model.parameters()).device
    offset = cache.prefix[0][0].shape[2] if cache.prefix else 0
    rows, width, limit = len(prompts), max(len(p) for p in prompts), sampling.max_new_tokens
    if width == 0:
        raise ValueError("nothing to generate from: every prompt of the batch is empty")
    ids = torch.full((rows, width), pad, dtype=torch.long)
    real = torch.zeros((rows, width), dtype=torch.bool)
    for r, p in enumerate(prompts):
        if p:
            ids[r, width - len(p) :] = torch.tensor(p)
            real[r, width - len(p) :] = True
    valid = torch.zeros((rows, width + limit), dtype=torch.bool)
    valid[:, :width] = real
    positions = (offset + real.long().cumsum(-1) - 1).masked_fill(~real, 1)
    ids, real, valid, positions = ids.to(device), real.to(device), valid.to(device), positions.to(device)

    cache.start(rows)
    generated = torch.zeros((rows, limit), dtype=torch.long, device=device)
    alive = torch.arange(rows)  # which prompt each row of the running batch is
    out: list[list[int]] = [[] for _ in prompts]
    with shared_prefix(model, cache.prefix):
        logits = model(input_ids=ids, attention_mask=_prefill_mask(real), position_ids=positions,
                       past_key_values=cache, use_cache=True, logits_to_keep=1).logits[:, -1]
        cache.advance(width)
        position = positions[:, -1:] + 1
        for step in range(limit):
            token = next_tokens(logits, sampling, generator)
            generated[:, step] = token
            done = watch.check(generated, step + 1)
            if eos is not None:
                done |= (token == eos).cpu()
            if step + 1 == limit:
                done[:] = True
            if done.any():
                for r in done.nonzero().flatten().tolist():
                    out[int(alive[r])] = generated[r, : step + 1].tolist()
                keep = (~done).nonzero().flatten()
                if not len(keep):
                    break
                live = keep.to(device)
                cache.keep(live)
                alive, generated, valid, position, token = alive[keep], generated[live], valid[live], position[live], \
                    token[live]
            length = cache.length
            valid[:, length] = True
            logits = model(input_ids=token[:, None], attention_mask=valid[:, None, None, : length + 1],
                           position_ids=position, past_key_values=cache, use_cache=True).logits[:, -1]
            cache.advance(1)
            position = position + 1
    return out
