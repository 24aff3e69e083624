"""The base of every configuration model: an unknown key is an error (a misspelt setting is never ignored)."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
