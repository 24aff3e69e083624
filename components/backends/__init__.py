"""Generation backends: `hf` (transformers, CPU or GPU)."""
