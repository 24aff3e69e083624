"""Every random seed a run derives from `seed` (the one in the run configuration), in one place.

Each derivation keeps the streams of different steps, iterations, shards and chunks apart, so a step's result
depends only on its own inputs and a retried or resumed step draws exactly what the first attempt drew."""

from enum import IntEnum

#: A prime far above any iteration x stage or shard offset below, so runs with neighbouring seeds never share a
#: stream.
RUN_STRIDE = 100_003
#: A prime above the number of questions in any chunk or batch: consecutive chunks (or batches) of one step draw
#: from streams this far apart.
CHUNK_STRIDE = 1_000_003
#: A prime: shard k of a generation step is offset by k strides (ten per iteration leave room for the stages).
SHARD_STRIDE = 7_919
#: Seeds handed to a sampler (torch's generators, vLLM's requests) are signed 64-bit integers.
SAMPLER_SEED_LIMIT = 2**63


def sampler_seed(value: int, room: int = 1) -> int:
    """`value` as a sampler takes it: below 2**63 - room + 1, so `room` consecutive streams (vLLM seeds sample k of
    a request with seed + k) all fit. Unchanged for every seed a run seed below about 10**6 gives; larger run
    seeds wrap around instead of overflowing the sampler."""
    return value % (SAMPLER_SEED_LIMIT - room + 1)


class Stage(IntEnum):
    """What a generation step draws for."""

    GENERATION = 0  # sampling the rationales of every training question
    RATIONALIZATION = 1  # sampling the rationales with the answer as a hint
    RATIONALIZATION_CHOICE = 2  # which failed questions are rationalized, which keep their hint line


def generation_seed(seed: int, iteration: int, stage: Stage, shard: int = 0) -> int:
    return seed * RUN_STRIDE + iteration * 10 + int(stage) + shard * SHARD_STRIDE


def chunk_seed(step_seed: int, chunk: int) -> int:
    """Chunk k of a step's questions (chunk 0 draws with the step's own seed)."""
    return step_seed + chunk * CHUNK_STRIDE


def evaluation_seed(seed: int, iteration: int) -> int:
    """The samples of held-out questions for maj@k and pass@k."""
    return seed * 7 + iteration


def training_seed(seed: int, iteration: int) -> int:
    """Data order, dropout and a fresh LoRA adapter's initialization in iteration n's train step."""
    return seed + iteration


def batch_seed(sampling_seed: int, batch: int) -> int:
    """Batch b of one `generate` call (hf backend): each batch samples from its own stream."""
    return sampler_seed(sampling_seed * CHUNK_STRIDE + batch)


def question_seed(sampling_seed: int, question: int, samples_per_question: int) -> int:
    """The first of question q's `n` sample streams in one `generate` call (vLLM takes one seed per request)."""
    return sampler_seed(sampling_seed * CHUNK_STRIDE + question * samples_per_question, room=samples_per_question)


def epoch_seed(seed: int, epoch: int) -> int:
    """The order of the rows in epoch e of a training run."""
    return seed * RUN_STRIDE + epoch


def held_out_pool_seed(task_seed: int) -> int:
    """The generated tasks' held-out questions are drawn from their own stream, apart from the training ones."""
    return task_seed + CHUNK_STRIDE


#: Offset of the stream that picks the few-shot examples of a generated task.
FEW_SHOT_OFFSET = 7
