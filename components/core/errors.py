"""The one error type users see: a sentence naming what to fix, printed without a traceback."""


class StarError(Exception):
    """A problem the user can fix (bad config value, missing file, malformed row)."""
