"""File names inside the step artifacts (each artifact is a folder)."""

EXAMPLES = "examples.jsonl"  # Dataset: Example rows of a split
ATTEMPTS = "attempts.jsonl"  # Dataset: Attempt rows (generation or rationalization)
FINETUNE = "finetune.jsonl"  # Dataset: TrainExample rows
SET_STATS = "set_stats.json"  # SetStats of a fine-tuning set (also copied into the checkpoint it trained)
TRAIN_STATS = "train_stats.json"  # TrainStats of a checkpoint
HISTORY = "history.jsonl"  # Dataset: IterationRecord rows, one per finished iteration
EVAL_ATTEMPTS = "eval_attempts.jsonl"
SUMMARY = "summary.json"
COMPARISON = "comparison.json"  # with evaluation.baselines: summary rows of STaR, the ablation and the control
CONFIG_DIGEST = "config.sha256"  # beside a report's summary.json: the run configuration it reports on
REPORT = "report.html"
