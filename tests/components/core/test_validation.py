"""components/core/validation.py: one wording of pydantic validation errors for configs, task settings and rows."""

from typing import Annotated, Literal

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from components.core.validation import describe_problems, first_problem, problems


def _positive_label(v: str) -> str:
    if not v.startswith("+"):
        raise ValueError(f"{v!r} does not start with '+'")
    return v


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["a", "b"] = "a"
    size: int = Field(1, ge=1)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    label: Annotated[str, AfterValidator(_positive_label)] = "+"
    inner: Inner = Field(default_factory=Inner)
    tags: list[Annotated[str, AfterValidator(_positive_label)]] | None = None


def _error(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(data)
    return info.value


def test_each_problem_names_its_field_and_what_is_wrong() -> None:
    found = dict(problems(_error({"inner": {"kind": "c", "size": 0, "colour": 1}, "label": "x"})))
    assert found["name"] == "is missing"
    assert found["label"] == "'x' does not start with '+'"  # our own words, the value not repeated
    assert found["inner.kind"] == "Input should be 'a' or 'b' (got 'c')"
    assert found["inner.size"] == "Input should be greater than or equal to 1 (got 0)"
    assert found["inner.colour"] == "is not a known field (check the spelling)"


def test_validator_steps_are_not_part_of_the_field_path() -> None:
    (loc, msg), *_ = problems(_error({"name": "n", "tags": ["+a", "b"]}))
    assert loc == "tags.1" and msg == "'b' does not start with '+'"


def test_sections_are_not_echoed_and_long_values_are_shortened() -> None:
    (_, msg), = problems(_error({"name": "n", "inner": ["not", "a", "mapping"]}))
    assert "got" not in msg
    (_, msg), = problems(_error({"name": "n", "inner": {"kind": "x" * 500}}))
    assert msg.endswith("...)") and len(msg) < 200


def test_first_problem_counts_the_others() -> None:
    assert first_problem(_error({"label": "x"})) == ("name", "is missing (and 1 more problem in this row)")
    loc, msg = first_problem(_error({"label": "x", "inner": {"size": 0}}), where="this file")
    assert msg.endswith("(and 2 more problems in this file)")


def test_describe_problems_joins_them_with_the_callers_words() -> None:
    text = describe_problems(_error({"name": "n", "colour": 1}), default="(top level)",
                             unknown="is not a known setting (check the spelling)")
    assert text == "colour: is not a known setting (check the spelling)"
    assert describe_problems(_error(["x"]), default="(top level)").startswith("(top level): Input should be")
