from pathlib import Path

import pytest

from components.core.errors import StarError
from components.core.rows import Example, read_rows, write_rows


def test_rows_round_trip(tmp_path: Path) -> None:
    rows = [Example(id=str(i), question=f"{i} + 1", answer=str(i + 1)) for i in range(3)]
    assert write_rows(tmp_path / "x.jsonl", rows) == 3
    assert read_rows(tmp_path / "x.jsonl", Example) == rows
    assert not (tmp_path / "x.jsonl.tmp").exists()


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(StarError, match="nope.jsonl does not exist"):
        read_rows(tmp_path / "nope.jsonl", Example)


def test_malformed_rows_name_line_and_field(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "1", "question": "q", "answer": "a"}\n{"id": "2", "question": "q"}\n')
    with pytest.raises(StarError, match=r"bad.jsonl, line 2: .*field 'answer'"):
        read_rows(p, Example)
    p.write_text('{"id": "1", "question": "q", "answer": "a"}\n{broken\n')
    with pytest.raises(StarError, match=r"line 2"):
        read_rows(p, Example)
