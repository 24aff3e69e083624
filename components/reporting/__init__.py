"""Rendering what a run shows a person: the report page."""
