"""Shared fixtures: a tiny model built locally (no downloads), small run configurations, and the data sets the
task tests read (made-up rows in the real formats, or the real data sets through `STAR_DATA`)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from components.demo.tiny_model import TinyModelConfig, save_untrained  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SMALL_BUILTIN = {
    "stages": [{"seed_examples": 60, "seed": 0, "steps": 20}],
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2},
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny Llama with the character tokenizer, saved with save_pretrained."""
    path = tmp_path_factory.mktemp("tiny") / "model"
    return save_untrained(path, TinyModelConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2))


@pytest.fixture(scope="session")
def star_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("star-cache")


def small_config(cache: Path, **overrides: object) -> dict:
    cfg: dict = {
        "name": "test",
        "iterations": 2,
        "task": {"name": "arithmetic", "min_digits": 1, "max_digits": 2, "train_size": 16, "eval_size": 8},
        "model": {"cache_dir": str(cache), "builtin": SMALL_BUILTIN},
        "generation": {"batch_size": 8, "max_new_tokens": 48},
        "training": {"batch_size": 4, "schedule": {"kind": "linear", "start_steps": 2, "add_steps": 1}},
    }
    for key, value in overrides.items():
        target = cfg
        *head, last = key.split(".")
        for part in head:
            target = target.setdefault(part, {})
        target[last] = value
    return cfg


def write_finetune_dir(folder: Path, rows: list) -> Path:
    """A fine-tuning-set artifact (rows and their counts) as the train step reads it."""
    from components.core.artifact_files import FINETUNE, SET_STATS
    from components.core.rows import SetStats, write_rows

    write_rows(folder / FINETUNE, rows)
    stats = SetStats(train_questions=len(rows), solved_by_generation=len(rows), solved_by_rationalization=0,
                     train_examples=len(rows), kept_generation=len(rows), kept_rationalization=0)
    (folder / SET_STATS).write_text(stats.model_dump_json())
    return folder


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 protocol server (moto's server mode) on loopback, for the whole session."""
    from tests.fakes.s3_server import moto_server

    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback server; the environment holds dummy credentials (as a pod's would hold
    real ones) and points boto3 at the server."""
    import uuid

    import boto3

    from tests.fakes.s3_server import AWS_ENV_TO_CLEAR, s3_env

    for name in AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(name, value)
    bucket = f"star-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


# ------------------------------------------------------------------------------------------------- data sets
# The task tests read the data sets through the fixture `data_dir`: a folder laid out like the real one
# (commonsenseqa/, gsm8k/, logic_reasoning/, with the real file names). By default it holds the rows the tests
# write (`written_data`: made up, in the real formats); a test decorated `@written_and_real` also runs on the
# real data sets (its `[real]` case). A test that only makes sense on the whole real set calls `real_data(...)`.

#: The folder of the real data sets: $STAR_DATA, by default ../shared/data beside the repository. A relative
#: path is taken relative to the repository root, never the working directory.
DATA_ENV = "STAR_DATA"
DEFAULT_DATA = "../shared/data"
#: Set (to anything but "" or "0") where the real data sets must be present, as in .ci/run: a test that needs
#: them then fails, with the reason it would have been skipped for.
REQUIRE_ENV = "STAR_REQUIRE_DATA"
DATA_SETS = ("commonsenseqa", "gsm8k", "logic_reasoning")

written_and_real = pytest.mark.parametrize("data_dir", ["written", "real"], indirect=True)

PROMPTS = Path(__file__).resolve().parent / "data" / "prompts"  # made-up few-shot files, in the real formats


def data_root() -> Path:
    """The folder the real data sets are looked for in (STAR_DATA); whether it exists is not checked."""
    path = Path(os.environ.get(DATA_ENV) or DEFAULT_DATA).expanduser()
    return path if path.is_absolute() else (REPO / path).resolve()


def real_data(relpath: str = "") -> Path:
    """`relpath` inside the real data sets (`""`: their folder, holding all three). When it is absent, the
    calling test is skipped, or fails when STAR_REQUIRE_DATA is set, saying what is missing."""
    root = data_root()
    needed = [root / relpath] if relpath else [root, *(root / name for name in DATA_SETS)]
    missing = next((p for p in needed if not p.exists()), None)
    if missing is not None:
        message = (f"needs the real data set {missing} (set {DATA_ENV} to the folder holding "
                   f"{', '.join(name + '/' for name in DATA_SETS)})")
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return root / relpath if relpath else root


@pytest.fixture
def data_dir(request: pytest.FixtureRequest, written_data: Path) -> Path:
    """The folder holding commonsenseqa/, gsm8k/ and logic_reasoning/: the written rows, or the real data sets
    in the `[real]` case of a test decorated `@written_and_real`."""
    return real_data() if getattr(request, "param", "written") == "real" else written_data


@pytest.fixture(scope="session")
def written_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made-up data sets in the real layout and formats: 240 GSM8K rows (the first four with the final answers
    72, 10, 5, 42) and 240 CommonsenseQA rows beside few-shot files from tests/data/prompts, and 200 logic
    problems (2 or 3 sub-questions of 2 to 5 options each; no prompts.txt, as in the real folder)."""
    root = tmp_path_factory.mktemp("data")
    for name in DATA_SETS:
        (root / name).mkdir()
        if (PROMPTS / name).is_dir():
            for shots in (PROMPTS / name).glob("*.txt"):
                (root / name / shots.name).write_bytes(shots.read_bytes())
    write_jsonl(root / "gsm8k" / "train_rand_split.jsonl", [gsm8k_row(i) for i in range(240)])
    write_jsonl(root / "commonsenseqa" / "train_rand_split.jsonl", [commonsenseqa_row(i) for i in range(240)])
    write_jsonl(root / "logic_reasoning" / "round1_train_data.jsonl", [logic_row(i) for i in range(200)])
    return root


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


NAMES = ["Ava", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena"]
GSM8K_FIRST = [  # golds 72, 10, 5, 42
    ("A baker bakes 24 rolls in the morning and twice as many in the afternoon. How many rolls does she bake in "
     "total?", "In the afternoon she bakes 24*2 = <<24*2=48>>48 rolls.\n"
     "In total she bakes 24+48 = <<24+48=72>>72 rolls.\n#### 72"),
    ("Leo earns $15 an hour for walking dogs. Yesterday he walked dogs for 40 minutes. How much did he earn?",
     "Leo earns 15/60 = $<<15/60=0.25>>0.25 per minute.\nIn 40 minutes he earns 0.25 x 40 = $<<0.25*40=10>>10.\n"
     "#### 10"),
    ("Ana wants a $60 lamp. She has saved $25 and her brother gives her $30. How much more does she need?",
     "Ana has 25+30 = $<<25+30=55>>55.\nShe needs 60-55 = $<<60-55=5>>5 more.\n#### 5"),
    ("A book has 138 pages. Sam read 18 pages yesterday and twice as many today. If he reads half of the "
     "remaining pages tomorrow, how many pages will he read tomorrow?",
     "Today Sam read 18*2 = <<18*2=36>>36 pages.\nSo far he has read 18+36 = <<18+36=54>>54 pages.\n"
     "There are 138-54 = <<138-54=84>>84 pages left.\nTomorrow he will read 84/2 = <<84/2=42>>42 pages.\n#### 42"),
]


def gsm8k_row(i: int) -> dict:
    """A GSM8K row: `question`, and an `answer` of calculation steps ending `#### <number>` (1 to 3 steps)."""
    if i < len(GSM8K_FIRST):
        question, answer = GSM8K_FIRST[i]
        return {"question": question, "answer": answer}
    name, item = NAMES[i % len(NAMES)], ["apples", "stamps", "marbles", "shells", "cards"][i % 5]
    a, b, c = 3 + i % 17, 2 + i % 7, 1 + i % 5
    if i % 3 == 0:
        question = f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?"
        steps, final = [f"{name} has {a}+{b} = <<{a}+{b}={a + b}>>{a + b} {item} now."], a + b
    elif i % 3 == 1:
        question = (f"{name} buys {b} bags of {item} with {a} {item} in each bag and gives away {c} {item}. "
                    f"How many {item} does {name} keep?")
        steps = [f"{name} buys {b}*{a} = <<{b}*{a}={a * b}>>{a * b} {item}.",
                 f"{name} keeps {a * b}-{c} = <<{a * b}-{c}={a * b - c}>>{a * b - c} {item}."]
        final = a * b - c
    else:
        question = (f"{name} collects {a} {item} on Monday, twice as many on Tuesday, and {c} fewer on Wednesday "
                    f"than on Tuesday. How many {item} does {name} collect in the three days?")
        w = 2 * a - c
        steps = [f"On Tuesday {name} collects {a}*2 = <<{a}*2={2 * a}>>{2 * a} {item}.",
                 f"On Wednesday {name} collects {2 * a}-{c} = <<{2 * a}-{c}={w}>>{w} {item}.",
                 f"In all {name} collects {a}+{2 * a}+{w} = <<{a}+{2 * a}+{w}={3 * a + w}>>{3 * a + w} {item}."]
        final = 3 * a + w
    return {"question": question, "answer": "\n".join(steps) + f"\n#### {final}"}


CQA_THINGS = [  # (question_concept, thing, where it is kept)
    ("toothbrush", "a toothbrush", "bathroom"), ("peas", "frozen peas", "freezer"),
    ("coat", "a winter coat", "closet"), ("tire", "a spare tire", "car trunk"), ("rake", "a garden rake", "shed"),
    ("passport", "a passport", "desk drawer"), ("wine", "bottles of wine", "cellar"),
    ("coins", "spare coins", "piggy bank"),
]
CQA_PLACES = [place for *_, place in CQA_THINGS] + ["roof", "oven", "mailbox"]


def commonsenseqa_row(i: int) -> dict:
    """A CommonsenseQA row in the reference JSONL layout (keys in its order; a 32-hex-digit id)."""
    concept, thing, place = CQA_THINGS[i % len(CQA_THINGS)]
    others = [p for p in CQA_PLACES if p != place]
    texts = [others[(i + 3 * k) % len(others)] for k in range(4)]
    key = i % 5
    texts.insert(key, place)
    return {
        "answerKey": "ABCDE"[key],
        "id": hashlib.md5(f"written-commonsenseqa-{i}".encode()).hexdigest(),
        "question": {"question_concept": concept,
                     "choices": [{"label": label, "text": t} for label, t in zip("ABCDE", texts, strict=True)],
                     "stem": f"Where would {NAMES[i % len(NAMES)]} most likely keep {thing}?"},
    }


LOGIC_NAMES = ["小明", "小红", "小刚", "小丽", "小华", "小军", "小芳", "小强"]


def logic_row(i: int) -> dict:
    """A logic problem: `problem` (with blank lines), `questions` of `question`, `options`, `answer`, and `id`."""
    if i % 2 == 0:  # an arithmetic sequence; the first sub-question has 2 to 5 options
        a, d, k = 2 + i % 9, 3 + i % 4, 4 + i % 3
        third, yes = a + 2 * d, i % 4 == 0
        n, wrong = 2 + (i // 2) % 4, [a + 3 * d, a + 2 * d - 1, a + d, a + 4 * d]
        options = [str(o) for o in wrong[: n - 1]]
        options.insert(i % n, str(third))
        problem = f"一个数列的第一项是 {a}，之后的每一项都比前一项大 {d}。\n\n根据上述规则，回答以下选择题："
        questions = [
            {"question": "选择题 1：\n这个数列的第 3 项是多少？", "options": options, "answer": "ABCDE"[i % n]},
            {"question": f"选择题 2：\n这个数列的第 {k} 项是否为 {a + (k - 1) * d + (0 if yes else 1)}？",
             "options": ["是", "否"], "answer": "A" if yes else "B"},
        ]
    else:  # an order of heights
        p, q, r = (LOGIC_NAMES[(i + j) % len(LOGIC_NAMES)] for j in range(3))
        problem = f"已知以下关于身高的事实：\n\n1. {p}比{q}高。\n2. {q}比{r}高。\n\n根据以上事实，回答以下选择题："
        order = [[p, q, r], [q, r, p], [r, p, q]][i % 3]
        questions = [
            {"question": "选择题 1：\n谁最高？", "options": order, "answer": "ABC"[order.index(p)]},
            {"question": f"选择题 2：\n{r}比{p}高吗？", "options": ["是", "否"], "answer": "B"},
            {"question": f"选择题 3：\n{q}比{r}高吗？", "options": ["是", "否"], "answer": "A"},
        ]
    return {"problem": problem, "questions": questions, "id": f"logic_{i:03d}"}
