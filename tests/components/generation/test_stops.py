from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from components.generation.stops import StopWatch


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _ids(tok, texts: list[str]) -> torch.Tensor:
    rows = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert len({len(r) for r in rows}) == 1
    return torch.tensor(rows)


def test_only_tokens_that_can_end_a_stop_string_are_looked_at(tok) -> None:
    watch = StopWatch(tok, ["\n\n", "Q:"])
    newline, colon, digit = (tok(c, add_special_tokens=False)["input_ids"][0] for c in ("\n", ":", "7"))
    assert watch.candidates[newline] and watch.candidates[colon] and not watch.candidates[digit]


def test_a_stop_string_is_found_on_the_step_it_is_completed(tok) -> None:
    watch = StopWatch(tok, ["\n\n"])
    tokens = _ids(tok, ["1 2\n\n34", "1 2\n3 4", "\n\n1 2 3"])
    found = [watch.check(tokens, step).tolist() for step in range(1, tokens.shape[1] + 1)]
    first = [next((step for step, row in enumerate(found, 1) if row[r]), None) for r in range(3)]
    assert first == [5, None, 2]


def test_no_stop_strings_never_stop(tok) -> None:
    assert not StopWatch(tok, []).check(_ids(tok, ["\n\n"]), 2).any()
    assert not StopWatch(tok, [""]).check(_ids(tok, ["\n\n"]), 2).any()


def test_the_sweep_finds_what_the_new_token_check_missed(tok) -> None:
    """A tokenizer whose pieces do not decode one by one could complete a stop string with a token that is no
    candidate: every `sweep` steps all rows are decoded, so such a row stops at the next sweep."""
    watch = StopWatch(tok, ["\n\n"], sweep=4)
    watch.candidates[:] = False
    tokens = _ids(tok, ["a\n\nbcdef"])
    assert [bool(watch.check(tokens, step)[0]) for step in range(1, 9)] == [False] * 3 + [True] + [False] * 3 + [True]
