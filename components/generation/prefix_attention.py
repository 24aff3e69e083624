"""Attention with the shared few-shot prefix held once for the whole batch (as in "cascade" or shared-prefix
attention): every row's queries meet the prefix's keys in one matrix product per head, and the row's own keys
(question and generated tokens) in a batched one; one softmax over both gives exactly softmax attention over
prefix + row. Without it every row carries a copy of the prefix's keys and values, which attention reads at every
step: with a 337-token prefix and 32 rows that is most of the memory traffic of a decoding step.

Used through transformers' attention interface while the hf backend decodes (`shared_prefix`); the model's own
attention implementation is restored afterwards. Plain softmax attention only: a model that passes a sliding
window, soft-capping or attention sinks to its attention function is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from transformers import AttentionInterface, PreTrainedModel

NAME = "star_shared_prefix"

#: The prefix's (keys, values) per layer, `1 × kv heads × prefix length × head dim`, while decoding.
_PREFIX: ContextVar[Sequence[tuple[torch.Tensor, torch.Tensor]] | None] = ContextVar("star_prefix", default=None)


def prefix_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """`query` `rows × heads × q × d`; `key`/`value` the rows' own positions (`rows × kv heads × k × d`);
    `attention_mask` `rows × 1 × q × k`, True where a query may attend (the prefix is visible to every query).
    Returns `rows × q × heads × d`, as transformers' attention functions do."""
    for unsupported in ("sliding_window", "softcap", "s_aux"):
        if kwargs.get(unsupported) is not None:
            raise ValueError(f"the hf backend's prefix attention does not support {unsupported}")
    if attention_mask is None or attention_mask.dtype != torch.bool:
        raise ValueError("the hf backend's prefix attention takes a boolean 4-D mask")
    rows, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads  # query heads per key/value head, as transformers' repeat_kv pairs them
    scale = scaling if scaling is not None else dim**-0.5
    q = query.reshape(rows, kv_heads, groups * q_len, dim)
    mask = attention_mask.repeat(1, 1, groups, 1) if groups > 1 else attention_mask
    own = torch.matmul(q, key.transpose(-1, -2)).mul_(scale).masked_fill_(~mask, float("-inf"))
    prefixes = _PREFIX.get()
    layer = getattr(module, "layer_idx", None)
    if not prefixes or layer is None:
        probs = own.softmax(-1, dtype=torch.float32).to(value.dtype)
        out = torch.matmul(probs, value)
    else:
        p_keys, p_values = prefixes[layer]
        length = p_keys.shape[2]
        by_head = q.transpose(0, 1).reshape(kv_heads, rows * groups * q_len, dim)
        shared = torch.matmul(by_head, p_keys[0].transpose(-1, -2)).mul_(scale)
        shared = shared.view(kv_heads, rows, groups * q_len, length).transpose(0, 1)
        probs = torch.cat([shared, own], dim=-1).softmax(-1, dtype=torch.float32).to(value.dtype)
        p_shared = probs[..., :length].transpose(0, 1).reshape(kv_heads, rows * groups * q_len, length)
        out = torch.matmul(probs[..., length:], value)
        out += torch.matmul(p_shared, p_values[0]).view(kv_heads, rows, groups * q_len, dim).transpose(0, 1)
    return out.reshape(rows, heads, q_len, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(NAME, prefix_attention)


@contextmanager
def shared_prefix(model: PreTrainedModel, prefix: Sequence[tuple[torch.Tensor, torch.Tensor]] | None) -> Iterator[None]:
    """Run `model`'s attention as `prefix_attention` over `prefix` (None: no shared prefix) inside the block."""
    config = model.config
    before = config._attn_implementation
    token = _PREFIX.set(prefix)
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before
        _PREFIX.reset(token)
