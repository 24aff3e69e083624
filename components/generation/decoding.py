"""The hf backend's decoding loop: one left-padded batch of prompts, decoded token by token with forward calls on
a preallocated KV cache (`kv_slots.SlotCache`), instead of `model.generate`.

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


def attention_mask(model: PreTrainedModel, allowed: torch.Tensor) -> torch.Tensor:
    """`allowed` (True: may attend) as the model's attention implementation takes a ready 4-D mask: as is for
    sdpa, additive for eager."""
    implementation = model.config._attn_implementation
    if implementation == "sdpa":
        return allowed
    if implementation == "eager":
        return torch.zeros(allowed.shape, dtype=model.dtype, device=allowed.device).masked_fill(
            ~allowed, torch.finfo(model.dtype).min)
    raise ValueError(f"the hf backend decodes with sdpa or eager attention, not {implementation!r}")


def _prefill_mask(valid: torch.Tensor, since: int, width: int) -> torch.Tensor:
    """`rows × 1 × width × (since + width)`: each question position sees the valid positions up to itself; a
    padding position also sees itself, so no row of the attention is empty (its output is never used)."""
    keys = since + width
    query = since + torch.arange(width, device=valid.device)
    causal = torch.arange(keys, device=valid.device)[None, :] <= query[:, None]
    mask = valid[:, None, :keys] & causal[None]
    mask[:, torch.arange(width), query] = True
    return mask[:, None]


@torch.inference_mode()
def decode_batch(
    model: PreTrainedModel,
    cache: SlotCache,
    since: int,
    prompts: list[list[int]],
    sampling: SamplingConfig,
    watch: StopWatch,
    eos: int | None,
    pad: int,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """The generated token ids of each prompt (up to and with the token that ended it). The cache holds the
    shared prefix in its first `since` positions; each prompt continues it, left-padded to the longest."""
    device = cache.layers[0].device if cache.layers[0].is_initialized else next(model.parameters()).device
    rows, width, limit = len(prompts), max(len(p) for p in prompts), sampling.max_new_tokens
    if since + width == 0:
        raise ValueError("nothing to generate from: the prefix and every prompt of the batch are empty")
    ids = torch.full((rows, width), pad, dtype=torch.long)
    real = torch.zeros((rows, width), dtype=torch.bool)
    for r, p in enumerate(prompts):
        if p:
            ids[r, width - len(p) :] = torch.tensor(p)
            real[r, width - len(p) :] = True
    valid = torch.zeros((rows, since + width + limit), dtype=torch.bool)
    valid[:, :since] = True
    valid[:, since : since + width] = real
    positions = (since + real.long().cumsum(-1) - 1).masked_fill(~real, 1)
    ids, valid, positions = ids.to(device), valid.to(device), positions.to(device)

    cache.start(rows, since)
    mask = attention_mask(model, _prefill_mask(valid, since, width))
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
                   logits_to_keep=1).logits[:, -1]
    cache.advance(width)
    position = positions[:, -1:] + 1
    generated = torch.zeros((rows, limit), dtype=torch.long, device=device)
    alive = torch.arange(rows)  # which prompt each row of the running batch is
    out: list[list[int]] = [[] for _ in prompts]
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
            cache.keep(keep.to(device), since)
            keep_d = keep.to(device)
            alive, generated, valid = alive[keep], generated[keep_d], valid[keep_d]
            position, token = position[keep_d], token[keep_d]
        length = cache.length
        valid[:, length] = True
        mask = attention_mask(model, valid[:, None, None, : length + 1])
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=position, past_key_values=cache,
                       use_cache=True).logits[:, -1]
        cache.advance(1)
        position = position + 1
    return out
