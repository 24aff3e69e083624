"""Where tests find the repository and their own data files, wherever in tests/ they live."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_DATA = REPO / "tests" / "data"
