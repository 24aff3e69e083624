"""Loading models: the base model, a LoRA adapter on it, or a full fine-tuned model."""
