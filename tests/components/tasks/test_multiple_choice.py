import csv
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from components.core import metrics
from components.core.errors import StarError
from components.core.rows import Example
from components.generation.ranking import rank_options
from components.tasks import MultipleChoiceConfig, MultipleChoiceTask, make_task
from components.tasks.multiple_choice import MCRow, fit_context, ranking_from_scores
from components.tasks.row_validation import load_rows
from tests.paths import TEST_DATA

FIXTURE = TEST_DATA / "science_exam.csv"
HEADER = ["id", "prompt", "A", "B", "C", "D", "E", "answer", "context"]


def task(**kw: object) -> MultipleChoiceTask:
    t = make_task(MultipleChoiceConfig(path=str(kw.pop("path", FIXTURE)), **kw))  # type: ignore[arg-type]
    assert isinstance(t, MultipleChoiceTask)
    return t


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def row(i: int, **kw: str) -> list[str]:
    values = {"id": f"q{i}", "prompt": f"Question {i}?", "A": "a", "B": "b", "C": "c", "D": "d", "E": "e",
              "answer": "C", "context": ""} | kw
    return [values[h] for h in HEADER]


def test_the_fixture_loads_with_open_and_closed_book_groups() -> None:
    t = task(eval_size=4)
    report = t.read()
    assert (report.read, len(report.rows), report.rejected) == (12, 12, 0)
    examples = t.all_examples()
    assert [e.id for e in examples][:2] == ["sci-001", "sci-002"]
    assert {e.group for e in examples} == {"open-book", "closed-book"}
    assert examples[2].extra["choices"][0] == ["A", "300,000 km/s"]  # quoted CSV cells with commas
    assert len(t.load("train")) == 8 and len(t.load("eval")) == 4


def test_the_prompt_is_the_lettered_choice_format_with_the_context_first() -> None:
    t = task()
    ex = t.all_examples()[1]
    q = t.question(ex, hint=False, direct=False)
    assert q.startswith("Context: Jupiter is the fifth planet")
    assert q.endswith("\nQ: Which planet in the Solar System has the largest mass?\nAnswer Choices:\n(a) Saturn\n"
                      "(b) Neptune\n(c) Earth\n(d) Jupiter\n(e) Uranus\nA:")
    assert "(d) Jupiter (CORRECT)\n" in t.question(ex, hint=True, direct=False)
    closed = t.question(t.all_examples()[0], hint=False, direct=False)
    assert closed.startswith("Q: What is the chemical symbol for gold?")


def test_a_long_context_is_cut_never_the_question() -> None:
    t = task(context_chars=200)
    ex = Example(id="x", question="What is the question that must survive?", answer="A",
                 extra={"choices": [["A", "yes"], ["B", "no"]], "context": "word " * 10_000 + "\n\nend"})
    q = t.question(ex, hint=False, direct=False)
    context_line, rest = q.split("\n", 1)
    assert len(context_line) <= len("Context: ") + 200 and context_line.endswith("…")
    assert rest == "Q: What is the question that must survive?\nAnswer Choices:\n(a) yes\n(b) no\nA:"
    assert not task(context_chars=0).question(ex, hint=False, direct=False).startswith("Context:")


def test_fit_context() -> None:
    assert fit_context("short  text\n\nhere", 100) == "short text here"
    cut = fit_context("alpha beta gamma delta epsilon", 20)
    assert cut == "alpha beta gamma…" and len(cut) <= 20


def test_built_in_worked_examples_read_out_to_their_own_answers() -> None:
    t = task()
    for direct in (False, True):
        shots = t.shots(direct=direct)
        assert shots.origin == "built-in science examples" and shots.answers == ["C", "B", "E"]
        for plain, hinted, answer in zip(shots.plain, shots.hint, shots.answers, strict=True):
            assert t.extract_answer(plain.split("\nA:", 1)[1], direct=direct) == answer
            assert hinted.count(" (CORRECT)\n") == 1 and "(CORRECT)" not in plain
    assert t.prefix(hint=False, direct=False).count("\n\n") == 3


def test_prompt_files_in_the_prompts_dir_replace_the_built_in_examples(tmp_path: Path) -> None:
    shots = [
        "Context: Water boils at 100 °C at sea level.\nQ: At what temperature does water boil at sea level?\n"
        "Answer Choices:\n(a) 50 °C\n(b) 100 °C\n(c) 0 °C\nA: The context says 100 °C. Therefore, the answer is "
        "100 °C (b).",
        "Q: What is H2O?\nAnswer Choices:\n(a) water\n(b) salt\nA: H2O is water. Therefore, the answer is water (a).",
    ]
    (tmp_path / "prompts.txt").write_text("\n\n".join(shots) + "\n")
    t = task(prompts_dir=str(tmp_path))
    assert t.prefix(hint=False, direct=False) == "\n\n".join(shots) + "\n\n"
    hints = t.few_shot(hint=True, direct=False)  # derived: the read-out answer is marked
    assert "(b) 100 °C (CORRECT)\n" in hints[0] and "(a) water (CORRECT)\n" in hints[1]
    assert t.shots(direct=False).answers == ["B", "A"]


@pytest.mark.parametrize(
    "cells, field, message",
    [
        ({"answer": "F"}, "answer", "'F' is not an option letter A-E"),
        ({"E": "", "answer": "E"}, None, "answer 'E' is not one of the options A-D"),
        ({"C": "", "answer": "A"}, None, "option D is given but option C is empty"),
        ({"prompt": "  "}, "prompt", "is empty"),
    ],
)
def test_bad_rows_are_reported_with_line_and_field(tmp_path: Path, cells: dict, field: str | None,
                                                    message: str) -> None:
    path = write_csv(tmp_path / "mc.csv", [row(1), row(2, **cells), row(3)])
    report = load_rows(str(path), MCRow, ("prompt", "A", "B", "answer"))
    assert report.read == 3 and report.rejected == 1
    err = report.errors[0]
    assert (err.line, err.field, err.message) == (3, field, message)


def test_csv_line_numbers_follow_multi_line_cells_and_short_rows_are_counted(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mc.csv", [row(1, context="line one\nline two\nline three"), row(2)])
    with path.open("a", encoding="utf-8") as f:
        f.write("q3,Question 3?,a,b\n")
    report = load_rows(str(path), MCRow, ("prompt", "A", "B", "answer"))
    assert [line for line, _ in report.rows] == [2, 5]
    assert str(report.errors[0]) == f"{path}, line 6: has 4 fields, the header has 9"


def test_a_csv_without_a_required_column_is_one_clear_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mc.csv", [["q1", "Question?", "a", "b", "c", "d", "e"]], HEADER[:-2])
    with pytest.raises(StarError, match=r"mc.csv, line 1: the CSV header lacks the column 'answer'"):
        task(path=path).read()


def test_rows_without_an_id_are_named_by_line(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mc.csv", [row(1)[1:], row(2)[1:]], HEADER[1:])
    assert [e.id for e in task(path=path, eval_size=1).all_examples()] == ["row-2", "row-3"]


def test_remote_urls_are_read_through_fsspec(tmp_path: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/exam/science.csv", FIXTURE.read_bytes())
    fs.pipe("/exam/prompts.txt", b"Q: What is H2O?\nAnswer Choices:\n(a) water\n(b) salt\nA: Water (a).")
    t = task(path="memory://exam/science.csv", eval_size=2)
    assert len(t.all_examples()) == 12
    assert t.prefix(hint=False, direct=False).startswith("Q: What is H2O?")
    with pytest.raises(StarError, match=r"memory://exam/missing.csv does not exist"):
        task(path="memory://exam/missing.csv").read()


def test_gs_without_gcsfs_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # as if gcsfs were not installed
    with pytest.raises(StarError, match=r"needs gcsfs .*pip install gcsfs=="):
        task(path="gs://bucket/science.csv").read()


@pytest.mark.parametrize(
    "completion, expected",
    [(" Air is mostly nitrogen. Therefore, the answer is nitrogen (c).", "C"), (" (e).", "E"), (" no idea", None)],
)
def test_answer_is_the_letter_at_the_end_of_the_first_line(completion: str, expected: str | None) -> None:
    assert task().extract_answer(completion, direct=False) == expected


def test_ranking_request_scores_each_option_after_the_models_rationale() -> None:
    t = task()
    ex = t.all_examples()[0]
    prompt, options, letters = t.ranking_request(
        ex, " Gold is Au from Latin aurum. Therefore, the answer is Ag (a).", direct=False)
    assert prompt == t.question(ex, hint=False, direct=False) + " Gold is Au from Latin aurum. Therefore, the answer is"
    assert options == [" Ag (a).", " Au (b).", " Gd (c).", " Go (d).", " Pb (e)."] and letters == list("ABCDE")
    prompt, _, _ = t.ranking_request(ex, " Gold is Au.", direct=False)
    assert prompt.endswith("A: Gold is Au. Therefore, the answer is")
    prompt, options, _ = t.ranking_request(ex, "", direct=True)
    assert prompt.endswith("\nA:") and options == [" (a).", " (b).", " (c).", " (d).", " (e)."]


def test_ranking_from_scores() -> None:
    assert ranking_from_scores(list("ABCDE"), [-3.0, -1.0, -2.0, -1.0, -9.0]) == ["B", "D", "C"]
    assert ranking_from_scores(["A", "B"], [0.0, -1.0]) == ["A", "B"]


# ----------------------------------------------------------------------------------- option log-likelihoods


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def naive_loglik(model: object, tok: object, prompt: str, option: str) -> float:
    p = tok(prompt, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    o = tok(option, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    with torch.no_grad():
        logits = model(torch.tensor([p + o])).logits[0].float()  # type: ignore[operator]
    logprobs = torch.log_softmax(logits, -1)
    return sum(logprobs[len(p) - 1 + j, t].item() for j, t in enumerate(o))


def test_rank_options_is_the_sum_of_option_token_log_probs(tiny: tuple) -> None:
    model, tok = tiny
    prompts = ["Q: 2+2?\nA:", "x", "A much longer prompt than the others, to pad the batch.\nA:"]
    options = [[" 4", " five", " (c)."], [" a", " bb"], [" yes", " no", " maybe", " x", " y"]]
    got = rank_options(model, tok, prompts, options, batch_size=2)
    assert [len(r) for r in got] == [3, 2, 5]
    for p, opts, scores in zip(prompts, options, got, strict=True):
        for o, s in zip(opts, scores, strict=True):
            assert s == pytest.approx(naive_loglik(model, tok, p, o), abs=1e-4)
            assert s < 0


def test_rank_options_does_not_depend_on_the_batch(tiny: tuple) -> None:
    model, tok = tiny
    t = task()
    examples = t.all_examples()[:5]
    requests = [t.ranking_request(e, "", direct=True) for e in examples]
    prefix = t.prefix(hint=False, direct=True)
    prompts, options = [prefix + r[0] for r in requests], [r[1] for r in requests]
    one = rank_options(model, tok, prompts, options, batch_size=1)
    many = rank_options(model, tok, prompts, options, batch_size=8)
    for a, b in zip(one, many, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    rankings = [ranking_from_scores(r[2], s) for r, s in zip(requests, many, strict=True)]
    assert all(len(r) == 3 and len(set(r)) == 3 for r in rankings)
    assert 0.0 <= metrics.map_at_3(rankings, [e.answer for e in examples]) <= 1.0


def test_rank_options_rejects_mismatched_inputs(tiny: tuple) -> None:
    model, tok = tiny
    with pytest.raises(ValueError, match="2 prompts but 1 option lists"):
        rank_options(model, tok, ["a", "b"], [[" x"]])
    with pytest.raises(ValueError, match="empty option"):
        rank_options(model, tok, ["a"], [[" x", ""]])
