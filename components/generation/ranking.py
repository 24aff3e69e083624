"""Option log-likelihoods with a transformers causal LM: how the hf backend ranks the letters of a
multiple-choice question (for MAP@3).

The score of an option is the sum of the log-probabilities of its continuation's tokens given the prompt.
Each prompt is run once: a batch of prompts (left-padded, position ids from the attention mask) fills a KV
cache, which is repeated for the options of each prompt; the options then run as one batch on that cache.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PreTrainedModel


def _encode(tokenizer: object, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []  # type: ignore[operator]


def _max_positions(model: PreTrainedModel) -> int | None:
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


@torch.inference_mode()
def rank_options(
    model: PreTrainedModel,
    tokenizer: object,
    prompts: list[str],
    options: list[list[str]],
    batch_size: int = 8,
) -> list[list[float]]:
    """For each prompt, the log-likelihood of each of its options as a continuation (sum over the option's
    tokens). Prompts longer than the model's window lose their beginning, never the options."""
    if len(prompts) != len(options):
        raise ValueError(f"{len(prompts)} prompts but {len(options)} option lists")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id  # type: ignore[attr-defined]
    bos = tokenizer.bos_token_id  # type: ignore[attr-defined]
    limit = _max_positions(model)

    encoded_options = [[_encode(tokenizer, o) for o in opts] for opts in options]
    encoded_prompts = []
    for i, prompt in enumerate(prompts):
        if any(not ids for ids in encoded_options[i]):
            raise ValueError(f"prompt {i} has an empty option")
        ids = _encode(tokenizer, prompt)
        if not ids:
            if bos is None:
                raise ValueError(f"prompt {i} is empty and the tokenizer has no BOS token to start from")
            ids = [bos]
        if limit is not None:
            longest = max((len(o) for o in encoded_options[i]), default=0)
            ids = ids[-max(limit - longest, 1):]
        encoded_prompts.append(ids)

    scores: list[list[float]] = [[] for _ in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded_prompts[i]))
    for start in range(0, len(order), batch_size):
        idx = [i for i in order[start : start + batch_size] if encoded_options[i]]
        if idx:
            for i, row in zip(idx, _score_batch(model, [encoded_prompts[i] for i in idx],
                                                [encoded_options[i] for i in idx], pad, device), strict=True):
                scores[i] = row
    return scores


def _score_batch(
    model: PreTrainedModel, prompts: list[list[int]], options: list[list[list[int]]], pad: int, device: torch.device
) -> list[list[float]]:
    n = len(prompts)
    width = max(len(p) for p in prompts)
    ids = torch.full((n, width), pad, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p)
        mask[r, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True,
                logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # next-token log-probs after each prompt

    k = max(len(o) for o in options)  # options per prompt in this batch (missing ones are padding)
    length = max(len(c) for opts in options for c in opts)
    cache.batch_repeat_interleave(k)
    opt_ids = torch.full((n * k, length), pad, dtype=torch.long)
    opt_mask = torch.zeros((n * k, length), dtype=torch.long)
    for r, opts in enumerate(options):
        for j, c in enumerate(opts):
            opt_ids[r * k + j, : len(c)] = torch.tensor(c)
            opt_mask[r * k + j, : len(c)] = 1
    opt_ids, opt_mask = opt_ids.to(device), opt_mask.to(device)
    prompt_lengths = mask.sum(-1).repeat_interleave(k)
    opt_positions = prompt_lengths[:, None] + torch.arange(length, device=device)[None, :]
    full_mask = torch.cat([mask.repeat_interleave(k, dim=0), opt_mask], dim=1)
    logits = model(input_ids=opt_ids, attention_mask=full_mask, position_ids=opt_positions, past_key_values=cache,
                   use_cache=True).logits.float()
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1) if length > 1 else None

    rows: list[list[float]] = []
    for r, opts in enumerate(options):
        row = []
        for j, c in enumerate(opts):
            total = first[r, c[0]].item()
            if len(c) > 1 and logprobs is not None:
                targets = opt_ids[r * k + j, 1 : len(c)]
                total += logprobs[r * k + j, : len(c) - 1].gather(-1, targets[:, None]).sum().item()
            row.append(total)
        rows.append(row)
    return rows

