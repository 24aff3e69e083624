"""File names inside the step artifacts (each artifact is a folder)."""

EXAMPLES = "examples.jsonl"  # Dataset: Example rows of a split
ATTEMPTS = "attempts.jsonl"  # Dataset: Attempt rows of generation (one per sample of every question)
RATIONALIZATIONS = "rationalizations.jsonl"  # beside ATTEMPTS: Attempt rows of rationalization (hinted questions)
FINETUNE = "finetune.jsonl"  # Dataset: TrainExample rows
SET_STATS = "set_stats.json"  # SetStats of a fine-tuning set (also copied into the model it trained)
TRAIN_STATS = "train_stats.json"  # TrainStats of an iteration's trained model
SKIPPED = "skipped.json"  # in a model artifact of an iteration that an early stop skipped (no weights)
HISTORY = "history.jsonl"  # Dataset: IterationRecord rows, one per finished iteration
EVAL_ATTEMPTS = "eval_attempts.jsonl"
SUMMARY = "summary.json"
COMPARISON = "comparison.json"  # with evaluation.baselines: summary rows of STaR, the ablation and the control
CONFIG_DIGEST = "config.sha256"  # beside a report's summary.json: the run configuration it reports on
REPORT = "report.html"
