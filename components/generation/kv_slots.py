"""A preallocated KV cache for the hf backend's decoding loop.

Every layer's keys and values of the rows' own positions (question and generated tokens) live in one tensor of
`rows × heads × length × head_dim`, allocated once per `HFGenerator.generate` call and reused by each of its
batches: a step writes the new keys in place (no `torch.cat` of the whole cache per token, as transformers'
DynamicCache does) and attention reads the used part, `[:live rows, :, :used length]`. The shared few-shot prefix
is kept once, beside them (`prefix`, read by `prefix_attention`). Rows that finish are dropped by moving the live
rows up (`keep`), so attention and the MLPs run on live rows only. Which positions a row may attend to is the
caller's mask: positions are shared by all rows (a left-padded batch), as in `model.generate`.
"""

from __future__ import annotations

import torch
from transformers import Cache, DynamicCache
from transformers.cache_utils import CacheLayerMixin


class _Fill:
    """What all layers share: the rows in use and the positions written so far."""

    def __init__(self) -> None:
        self.rows = 0
        self.length = 0


class SlotLayer(CacheLayerMixin):
    """One layer's keys and values, written in place at the shared position."""

    is_compileable = False
    is_sliding = False
    is_croppable = False

    def __init__(self, fill: _Fill, rows: int, length: int) -> None:
        super().__init__()
        self.fill, self.capacity_rows, self.capacity_length = fill, rows, length

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        heads = key_states.shape[1]
        self.keys = torch.zeros((self.capacity_rows, heads, self.capacity_length, key_states.shape[-1]),
                                dtype=key_states.dtype, device=key_states.device)
        self.values = torch.zeros((self.capacity_rows, value_states.shape[1], self.capacity_length,
                                   value_states.shape[-1]), dtype=value_states.dtype, device=value_states.device)
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object,
               **kwargs: object) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        assert self.keys is not None and self.values is not None
        rows, start = self.fill.rows, self.fill.length
        end = start + key_states.shape[-2]
        if end > self.capacity_length:
            raise ValueError(f"the KV cache holds {self.capacity_length} positions, {end} were asked for")
        self.keys[:rows, :, start:end] = key_states
        self.values[:rows, :, start:end] = value_states
        return self.keys[:rows, :, :end], self.values[:rows, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.fill.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.fill.length

    def get_max_length(self) -> int:
        return self.capacity_length


class SlotCache(Cache):
    """`rows × length` KV slots for every layer. The caller sets the rows in use (`start`), moves the written
    length on after each forward pass (`advance`) and drops finished rows (`keep`)."""

    def __init__(self, num_layers: int, rows: int, length: int) -> None:
        self.fill = _Fill()
        self.capacity_rows, self.capacity_length = rows, length
        self.prefix: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        super().__init__(layers=[SlotLayer(self.fill, rows, length) for _ in range(num_layers)])

    @property
    def rows(self) -> int:
        return self.fill.rows

    @property
    def length(self) -> int:
        return self.fill.length

    def put_prefix(self, prefix: DynamicCache) -> None:
        """Hold a one-row cache (the shared prefix) as every row's first positions."""
        if len(prefix.layers) != len(self.layers):
            raise ValueError(f"the prefix cache has {len(prefix.layers)} layers, this cache {len(self.layers)}")
        self.prefix = [(layer.keys, layer.values) for layer in prefix.layers]  # type: ignore[misc]

    def start(self, rows: int) -> None:
        """Use the first `rows` rows, from their first position on."""
        if rows > self.capacity_rows:
            raise ValueError(f"the KV cache holds {self.capacity_rows} rows, {rows} were asked for")
        self.fill.rows, self.fill.length = rows, 0

    def advance(self, n: int) -> None:
        self.fill.length += n

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (indices of rows in use, ascending), moved up to the front."""
        end = self.fill.length
        for layer in self.layers:
            if layer.is_initialized:
                assert layer.keys is not None and layer.values is not None
                layer.keys[: len(rows), :, :end] = layer.keys[rows, :, :end]
                layer.values[: len(rows), :, :end] = layer.values[rows, :, :end]
        self.fill.rows = len(rows)
