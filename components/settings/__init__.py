"""The run configuration's sections (what a user writes in YAML) and the settings each step is given (the few
sections it reads, so a step's cache key changes only when something it reads changes)."""
