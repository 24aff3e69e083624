"""Step: start from an earlier run. Reads the model and history that run published for iteration k-1, so this
run's iterations k, k+1, ... go on where it stopped."""

from kfp.dsl import Dataset, Model, Output

from components.settings.steps import StartSettings


def start_from(settings: StartSettings, model_dir: str, history_dir: str) -> None:
    from components.published import fetch_iteration

    fetch_iteration(settings.url, settings.iteration, model_dir, history_dir, settings.storage)
    print(f"starting after iteration {settings.iteration} of the run published at {settings.url}")


def start_from_op(settings: str, model: Output[Model], history: Output[Dataset]):
    from components.settings.steps import StartSettings
    from components.start_from_run import start_from

    start_from(StartSettings.load(settings), model.path, history.path)
