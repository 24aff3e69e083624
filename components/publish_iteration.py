"""Step: publish a finished iteration (its model and the history up to it) to `<publish>/iteration-<n>/`, so a
later run can start from it."""

from kfp.dsl import Dataset, Input, Model

from components.settings.steps import PublishSettings


def publish(settings: PublishSettings, iteration: int, model_dir: str, history_dir: str, active: bool = True) -> str:
    from components.published import publish_iteration

    if not active:
        return ""
    url = publish_iteration(settings.url, iteration, model_dir, history_dir, settings.storage)
    print(f"iteration {iteration}: published to {url}")
    return url


def publish_op(settings: str, iteration: int, active: bool, model: Input[Model], history: Input[Dataset]) -> str:
    from components.publish_iteration import publish
    from components.settings.steps import PublishSettings

    return publish(PublishSettings.load(settings), iteration, model.path, history.path, active)
