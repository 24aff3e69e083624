"""A tiny Llama-style model and a character-level tokenizer, built locally.

They stand in for a pretrained checkpoint where no weights can be downloaded: the tokenizer is saved as a
Hugging Face tokenizer and the model with `save_pretrained`, so both load through the very same
`from_pretrained` path a real model uses.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:  # imported where a model is built: the config (read by every step) stays free of torch
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARACTERS = [c for c in string.printable if c not in "\t\r\x0b\x0c"]  # printable ASCII and newline


class TinyModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(128, ge=16)
    intermediate_size: int = Field(512, ge=16)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    max_positions: int = Field(1024, ge=64)
    seed: int = 0
    #: A space followed by a digit is one token (" 7"): each spaced digit of a sum takes one position, not two.
    digit_tokens: bool = False


def build_tokenizer(digit_tokens: bool = False) -> PreTrainedTokenizerFast:
    """One token per character (BPE without merges), unknown characters map to <unk>; with `digit_tokens`, one
    merge per digit makes a space and the digit after it a single token."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS + CHARACTERS)}
    merges = [(" ", d) for d in string.digits] if digit_tokens else []
    for a, b in merges:
        vocab[a + b] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        padding_side="left", model_max_length=4096,
    )


def build_model(config: TinyModelConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(llama)


def save_untrained(path: str | Path, config: TinyModelConfig) -> Path:
    path = Path(path)
    tok = build_tokenizer(config.digit_tokens)
    build_model(config, tok).save_pretrained(path)
    tok.save_pretrained(path)
    return path
