import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from components.generation.decoding import next_tokens, sampling_scores
from components.generation.sampling import SamplingConfig


def test_sampling_scores_are_transformers_temperature_then_top_p() -> None:
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0)) * 3
    for temperature, top_p in ((0.7, 0.9), (1.5, 0.5), (1.0, 1.0), (0.3, 0.05)):
        ours = sampling_scores(logits, SamplingConfig(temperature=temperature, top_p=top_p))
        theirs = TemperatureLogitsWarper(temperature)(None, logits.clone())
        if top_p < 1.0:
            theirs = TopPLogitsWarper(top_p)(None, theirs)
        assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
        assert torch.allclose(ours[~torch.isinf(ours)], theirs[~torch.isinf(theirs)])


def test_greedy_is_the_argmax_and_a_draw_stays_in_the_top_p_set() -> None:
    logits = torch.tensor([[0.0, 5.0, 4.9, -1.0], [3.0, 0.0, 0.0, 2.0]])
    assert next_tokens(logits, SamplingConfig(), None).tolist() == [1, 0]
    cfg = SamplingConfig(temperature=1.0, top_p=0.6)
    g = torch.Generator().manual_seed(1)
    draws = torch.stack([next_tokens(logits, cfg, g) for _ in range(200)])
    assert set(draws[:, 0].tolist()) == {1, 2} and set(draws[:, 1].tolist()) == {0}
    again = torch.stack([next_tokens(logits, cfg, torch.Generator().manual_seed(1)) for _ in range(3)])
    assert torch.equal(again[0], again[1])
