"""The demo's built-in base model: a tiny Llama-style model pre-trained here on scratchpad sums (no weights can
be downloaded)."""
