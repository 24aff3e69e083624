import json
import re
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from components.core.errors import StarError
from pipelines.task_cli import build_task, data_app, prompt_command, score_command
from tests.conftest import DEFAULT_DATA, real_data, written_and_real
from tests.paths import REPO, TEST_DATA

# inside the folder of the data sets (the fixture data_dir, or real_data())
GSM8K = "gsm8k/train_rand_split.jsonl"
CQA = "commonsenseqa/train_rand_split.jsonl"
LOGIC = "logic_reasoning/round1_train_data.jsonl"
MC = TEST_DATA / "science_exam.csv"

app = typer.Typer()
app.add_typer(data_app, name="data")
app.command("prompt")(prompt_command)
app.command("score")(score_command)
runner = CliRunner()


def star(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "task, path, expected",
    [
        ("gsm8k", GSM8K, ["7473 rows read, 7473 valid, 0 rejected", "examples: 7473"]),
        ("commonsenseqa", CQA, ["9741 rows read, 9741 valid, 0 rejected", "examples: 9741"]),
        ("logic", LOGIC, ["500 rows read, 500 valid, 0 rejected", "examples: 1421 sub-questions of 500 problems"]),
        ("multiple_choice", MC, ["12 rows read, 12 valid, 0 rejected", "examples: 12"]),
    ],
)
def test_data_check_loads_every_row_of_the_shared_files(task: str, path: str | Path, expected: list[str]) -> None:
    path = real_data(path) if isinstance(path, str) else path
    result = star("data", "check", "--task", task, path, "--set", "eval_size=4")
    assert result.exit_code == 0, result.output
    for line in expected:
        assert line in result.stdout
    assert "few-shot (rationale):" in result.stdout and "each reads out to its own answer" in result.stdout
    assert "few-shot (direct):" in result.stdout


def test_data_check_reports_a_damaged_copy_with_line_and_field(tmp_path: Path, data_dir: Path) -> None:
    cqa = data_dir / CQA
    lines = cqa.read_text().splitlines()[:25]
    r = json.loads(lines[3])
    del r["question"]["stem"]
    lines[3] = json.dumps(r)
    r = json.loads(lines[7])
    r["answerKey"] = "G"
    lines[7] = json.dumps(r)
    lines[15] = "{broken"
    path = tmp_path / "cqa.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = star("data", "check", "--task", "commonsenseqa", path, "--prompts-dir", cqa.parent, "--set",
                  "eval_size=3")
    assert result.exit_code == 1
    assert "25 rows read, 22 valid, 3 rejected" in result.stdout
    assert "rejected rows (first 3 of 3):" in result.stdout
    assert f"{path}, line 4, field 'question.stem': is missing" in result.stdout
    assert f"{path}, line 8, field 'answerKey': 'G' is not one of the choice labels A-E" in result.stdout
    assert f"{path}, line 16: is not valid JSON" in result.stdout


def test_data_check_fails_on_a_bad_few_shot_file(tmp_path: Path, data_dir: Path) -> None:
    gsm8k = data_dir / GSM8K
    shutil.copy(gsm8k, tmp_path / "train.jsonl")
    shots = (gsm8k.parent / "prompts.txt").read_text().replace("#### 72", "#### seventy-two")
    (tmp_path / "prompts.txt").write_text(shots)
    shutil.copy(gsm8k.parent / "prompts_answer_key.txt", tmp_path / "prompts_answer_key.txt")
    result = star("data", "check", "--task", "gsm8k", tmp_path / "train.jsonl")
    assert result.exit_code == 1
    assert "prompts.txt, example 1: its rationale has no final answer" in result.stdout


@written_and_real
def test_prompt_prints_exactly_what_the_model_sees(data_dir: Path) -> None:
    cqa, logic = data_dir / CQA, data_dir / LOGIC
    t = build_task("commonsenseqa", str(cqa))
    ex = t.all_examples()[3]
    result = star("prompt", "--task", "commonsenseqa", cqa, "--row", 3)
    assert result.exit_code == 0
    assert result.stdout == t.prompt(ex, hint=False, direct=False)
    assert result.stdout == (cqa.parent / "prompts.txt").read_text() + "\n\n" + t.question(ex, hint=False, direct=False)
    assert f"id {ex.id}" in result.stderr
    hinted = star("prompt", "--task", "commonsenseqa", cqa, "--id", ex.id, "--hint", "--direct")
    assert hinted.stdout == t.prompt(ex, hint=True, direct=True)
    assert hinted.stdout.startswith((cqa.parent / "prompts_direct_answer_key.txt").read_text())
    bare = star("prompt", "--task", "logic", logic, "--no-few-shot")
    assert bare.stdout.startswith("你是一个逻辑推理专家") and bare.stdout.endswith("### 解答：\n")


def test_prompt_rejects_a_row_out_of_range() -> None:
    result = star("prompt", "--task", "multiple_choice", MC, "--row", 12)
    assert isinstance(result.exception, StarError)
    assert "--row 12 is out of range" in str(result.exception) and "12 examples (0..11)" in str(result.exception)


def test_score_of_the_gold_gsm8k_solutions_is_100_percent_on_the_training_split(tmp_path: Path) -> None:
    gsm8k = real_data(GSM8K)
    rows = [json.loads(line) for line in gsm8k.read_text().splitlines()]
    train = build_task("gsm8k", str(gsm8k)).load("train")
    preds = write_jsonl(tmp_path / "gold.jsonl", [
        {"id": e.id, "output": " " + rows[int(e.id.removeprefix("row-")) - 1]["answer"]} for e in train])
    result = star("score", "--task", "gsm8k", gsm8k, preds, "--split", "train", "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["accuracy"] == 1.0 and scores["questions_scored"] == scores["questions"] == 7273
    assert scores["pass@k"] == {"1": 1.0} and scores["unreadable"] == 0
    assert set(scores["accuracy_by_group"].values()) == {1.0}
    text = star("score", "--task", "gsm8k", gsm8k, preds, "--split", "train")
    assert "accuracy: 100.00%" in text.stdout and "questions scored: 7273 of 7273" in text.stdout


@written_and_real
def test_score_with_several_samples_reports_maj_at_k_and_pass_at_k(tmp_path: Path, data_dir: Path) -> None:
    gsm8k = data_dir / GSM8K
    examples = build_task("gsm8k", str(gsm8k)).all_examples()
    ids = [e.id for e in examples[:4]]  # gold: 72, 10, 5, 42
    outputs = {ids[0]: ["#### 72", "#### 70", "#### 72"],  # first right, majority right, 2 of 3
               ids[1]: ["#### 9", "#### 10.0", "#### 10"],  # first wrong, majority right, 2 of 3
               ids[2]: ["#### 5", "#### 6", "#### 7"],  # first right, no majority (tie: first), 1 of 3
               ids[3]: ["no answer", "#### 1", "#### 1"]}  # all wrong
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": i, "output": o} for i, outs in outputs.items() for o in outs])
    scores = json.loads(star("score", "--task", "gsm8k", gsm8k, preds, "--json").stdout)
    assert scores["accuracy"] == 0.5
    assert scores["maj@3"] == 0.75
    assert scores["pass@k"]["1"] == pytest.approx((2 + 2 + 1 + 0) / 12)
    assert scores["pass@k"]["3"] == 0.75
    assert scores["pass@k"]["2"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    assert scores["questions_missing"] == len(examples) - 4 and scores["unreadable"] == 1


def test_score_reports_map_at_3_for_multiple_choice(tmp_path: Path) -> None:
    # golds: sci-001 B, sci-002 D, sci-003 A, sci-004 C
    preds = write_jsonl(tmp_path / "p.jsonl", [
        {"id": "sci-001", "output": " Therefore, the answer is Au (b).", "ranking": ["B", "A", "C"]},
        {"id": "sci-002", "output": " (a).", "ranking": ["A", "D", "B"]},
        {"id": "sci-003", "output": " (c).", "ranking": ["C", "B", "A"]},
        {"id": "sci-004", "output": " (a).", "ranking": ["a", "b", "d"]},
    ])
    scores = json.loads(star("score", "--task", "multiple_choice", MC, preds, "--json").stdout)
    assert scores["accuracy"] == 0.25
    assert scores["map@3"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert scores["rankings_given"] == 4
    # without a ranking, letters are ranked by the votes of the samples
    voted = write_jsonl(tmp_path / "v.jsonl", [
        {"id": "sci-002", "output": o} for o in (" (a).", " (d).", " (a).", " (b).")])
    assert json.loads(star("score", "--task", "multiple_choice", MC, voted, "--json").stdout)["map@3"] == 0.5


@pytest.mark.parametrize(
    "line, message",
    [
        ({"id": "nope", "output": "#### 1"}, r"p.jsonl, line 2, field 'id': 'nope' is not a question of the data"),
        ({"id": "row-1"}, r"p.jsonl, line 2, field 'output': is missing"),
        ({"id": "row-1", "output": "x", "ranking": ["AB"]}, r"line 2, field 'ranking': must be a list of option"),
    ],
)
def test_score_names_the_bad_line_and_field(tmp_path: Path, data_dir: Path, line: dict, message: str) -> None:
    preds = write_jsonl(tmp_path / "p.jsonl", [{"id": "row-1", "output": "#### 72"}, line])
    result = star("score", "--task", "gsm8k", data_dir / GSM8K, preds)
    assert isinstance(result.exception, StarError)
    assert re.search(message, str(result.exception))


def test_score_rejects_broken_json(tmp_path: Path, data_dir: Path) -> None:
    preds = tmp_path / "p.jsonl"
    preds.write_text('{"id": "row-1", "output": "#### 72"}\n{"id": \n')
    result = star("score", "--task", "gsm8k", data_dir / GSM8K, preds)
    assert isinstance(result.exception, StarError) and "p.jsonl, line 2: not valid JSON" in str(result.exception)


def test_task_options_are_checked(data_dir: Path) -> None:
    with pytest.raises(StarError, match="not a task that reads a data file"):
        build_task("arithmetic", "x.jsonl")
    with pytest.raises(StarError, match=r"eval_size: Input should be greater than or equal to 1"):
        build_task("gsm8k", str(data_dir / GSM8K), settings=["eval_size=0"])
    with pytest.raises(StarError, match=r"colour: is not a setting of this task"):
        build_task("gsm8k", str(data_dir / GSM8K), settings=["colour=red"])
    assert build_task("multiple_choice", str(MC), settings=["task.context_chars=10"]).config.context_chars == 10


@pytest.mark.parametrize("name", ["gsm8k", "commonsenseqa", "multiple_choice", "logic"])
def test_the_tiny_examples_validate_and_their_data_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.tasks import make_task
    from pipelines.config import load_config

    repo = REPO
    monkeypatch.chdir(repo)  # the example paths are relative to the repository root
    example = repo / "examples" / f"{name}-tiny.yaml"
    cfg = load_config(example)
    if name != "multiple_choice":  # the example names the real data set where the team keeps it (the default)
        relpath = {"gsm8k": GSM8K, "commonsenseqa": CQA, "logic": LOGIC}[name]
        assert Path(cfg.task.path).resolve() == (repo / DEFAULT_DATA / relpath).resolve()
        cfg = load_config(example, [f"task.path={real_data(relpath)}"])  # found through STAR_DATA
    assert cfg.task.name == name and cfg.model.base == "builtin:tiny-untrained" and cfg.iterations == 2
    t = make_task(cfg.task)
    train, held_out = t.load("train"), t.load("eval")
    assert train and held_out and len(train) <= 32
    assert t.prompt(train[0], hint=True, direct=False)


@pytest.mark.parametrize("name", ["gsm8k", "commonsenseqa"])
def test_the_gpu_examples_validate(name: str) -> None:
    from pipelines.config import load_config

    cfg = load_config(REPO / "examples" / f"{name}-gpu.yaml")
    assert cfg.task.name == name and "/" in cfg.model.base and cfg.task.path.startswith("s3://")
