import pytest
import torch
import torch.nn.functional as F

from components.generation.prefix_attention import _PREFIX, prefix_attention


class _Attention(torch.nn.Module):
    layer_idx = 0


@pytest.mark.parametrize(("heads", "kv_heads", "queries"), [(4, 4, 1), (4, 2, 1), (6, 2, 5)])
def test_one_softmax_over_the_shared_prefix_and_each_rows_own_keys(heads: int, kv_heads: int, queries: int) -> None:
    g = torch.Generator().manual_seed(heads + kv_heads + queries)
    rows, dim, prefix, own = 3, 8, 7, 9
    q = torch.randn(rows, heads, queries, dim, generator=g)
    p_keys, p_values = torch.randn(1, kv_heads, prefix, dim, generator=g), torch.randn(1, kv_heads, prefix, dim,
                                                                                      generator=g)
    keys, values = torch.randn(rows, kv_heads, own, dim, generator=g), torch.randn(rows, kv_heads, own, dim,
                                                                                   generator=g)
    mask = torch.rand(rows, 1, queries, own, generator=g) > 0.4
    token = _PREFIX.set([(p_keys, p_values)])
    try:
        out, _ = prefix_attention(_Attention(), q, keys, values, mask, scaling=0.3)
    finally:
        _PREFIX.reset(token)
    groups = heads // kv_heads
    full_keys = torch.cat([p_keys.expand(rows, -1, -1, -1), keys], 2).repeat_interleave(groups, 1)
    full_values = torch.cat([p_values.expand(rows, -1, -1, -1), values], 2).repeat_interleave(groups, 1)
    full_mask = torch.cat([torch.ones(rows, 1, queries, prefix, dtype=torch.bool), mask], -1)
    expected = F.scaled_dot_product_attention(q, full_keys, full_values, attn_mask=full_mask, scale=0.3)
    assert out.shape == (rows, queries, heads, dim)
    torch.testing.assert_close(out, expected.transpose(1, 2))


def test_without_a_prefix_it_is_masked_softmax_attention() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 4, 8, generator=g) for _ in range(3))
    mask = torch.ones(4, 4, dtype=torch.bool).tril()[None, None].expand(2, 1, 4, 4)
    out, _ = prefix_attention(_Attention(), q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2))


def test_what_it_cannot_do_is_refused() -> None:
    q = torch.zeros(1, 1, 1, 4)
    with pytest.raises(ValueError, match="sliding_window"):
        prefix_attention(_Attention(), q, q, q, torch.ones(1, 1, 1, 1, dtype=torch.bool), sliding_window=4)
    with pytest.raises(ValueError, match="boolean"):
        prefix_attention(_Attention(), q, q, q, None)
