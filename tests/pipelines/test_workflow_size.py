"""The Argo Workflow size estimate: driven by the IR (a sub-pipeline reused N times costs N invocations of
node status but one definition), linear in the uses, ParallelFor and conditions multiply what runs, and the
sums and bounds hold. (No `from __future__ import annotations`: KFP reads the annotations as types.)"""

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kfp import compiler, dsl, kubernetes

from pipelines.workflow_size import (
    ARGO_OBJECT_LIMIT,
    ETCD_REQUEST_LIMIT,
    WorkflowEstimate,
    estimate_workflow,
)


def _work(x: int, note: str) -> int:
    """One small step."""
    print(note)
    return x + 1


def make_work(extra_packages: int) -> Callable:
    """The same component; `extra_packages` only makes its container command (the definition) longer."""
    packages = [f"some-package-{i:04d}==1.0.{i}" for i in range(extra_packages)]
    return dsl.component(base_image="python:3.11", packages_to_install=packages or None)(_work)


def make_chain(uses: int, work: Callable) -> Callable:
    """A flat chain: one sub-pipeline definition (two steps) invoked `uses` times."""

    @dsl.pipeline(name="stage")
    def stage(x: int) -> int:
        a = work(x=x, note="a")
        b = work(x=a.output, note="b")
        return b.output

    @dsl.pipeline(name="chain")
    def chain(x: int = 0):
        out = x
        for _ in range(uses):
            out = stage(x=out).output

    return chain


def compile_to(tmp_path: Path, pipeline: Callable, name: str) -> str:
    path = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return path.read_text()


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], WorkflowEstimate]:
    tmp = tmp_path_factory.mktemp("chains")
    out = {}
    for kind, extra in (("small", 0), ("big", 120)):
        for uses in (4, 8, 16):
            text = compile_to(tmp, make_chain(uses, make_work(extra)), f"{kind}{uses}")
            out[kind, uses] = estimate_workflow(text)
    return out


def test_counts_follow_the_ir(chains):
    for uses in (4, 8, 16):
        e = chains["small", uses]
        assert e.tasks == 2 * uses  # two steps per invocation of the sub-pipeline
        assert e.dag_nodes == 1 + uses  # root + one DAG invocation per use
        # a driver and an executor pod per step, a DAG driver per invocation, the root DAG driver
        assert e.pods == 2 * e.tasks + uses + 1


def test_estimate_grows_linearly_with_sub_pipeline_uses(chains):
    for kind in ("small", "big"):
        e4, e8, e16 = (chains[kind, n] for n in (4, 8, 16))
        for part in ("total_bytes", "status_bytes", "spec_bytes"):
            step_8_16 = getattr(e16, part) - getattr(e8, part)
            step_4_8 = getattr(e8, part) - getattr(e4, part)
            assert step_4_8 > 0
            assert step_8_16 == pytest.approx(2 * step_4_8, rel=0.05), (kind, part)


def test_reused_definition_is_in_the_spec_once_but_runs_every_time(chains):
    def per_use(kind: str, part: str) -> float:
        return (getattr(chains[kind, 16], part) - getattr(chains[kind, 4], part)) / 12

    # the longer container command is in the spec once: the spec per use does not depend on it ...
    assert per_use("big", "spec_bytes") == pytest.approx(per_use("small", "spec_bytes"), abs=2)
    definition = chains["big", 4].spec_bytes - chains["small", 4].spec_bytes
    assert definition > 3000
    assert chains["big", 16].spec_bytes - chains["small", 16].spec_bytes == pytest.approx(definition, abs=32)
    # ... while every invocation's nodes carry it again (driver inputs, pod-spec-patch copies)
    assert per_use("big", "status_bytes") - per_use("small", "status_bytes") > 4 * definition
    # per use, the spec only gains the invocation's DAG task entries, a small part of what the run records
    assert per_use("small", "spec_bytes") < 0.1 * per_use("small", "status_bytes")


def test_status_grows_with_the_nodes_that_run(chains):
    estimates = [chains["small", n] for n in (4, 8, 16)]
    assert [e.argo_nodes for e in estimates] == sorted(e.argo_nodes for e in estimates)
    per_node = [
        (b.status_bytes - a.status_bytes) / (b.argo_nodes - a.argo_nodes)
        for a, b in zip(estimates, estimates[1:], strict=False)
    ]
    assert per_node[0] == pytest.approx(per_node[1], rel=0.05)
    assert all(500 < p < 20_000 for p in per_node)


def test_parts_add_up_and_are_bounded_below_by_the_package(chains):
    for e in chains.values():
        assert e.total_bytes == e.spec_bytes + e.status_bytes
        assert e.total_bytes >= e.package_bytes
        assert e.spec_bytes > 0 and e.status_bytes > 0
        assert e.compressed_total_bytes < e.total_bytes


def test_argo_template_retries_double_the_nodes(tmp_path):
    text = compile_to(tmp_path, make_chain(2, make_work(0)), "chain2")
    with_retries = estimate_workflow(text)
    without = estimate_workflow(text, argo_template_retries=False)
    assert with_retries.argo_nodes == 2 * without.argo_nodes  # a Retry node + its (0) attempt each
    assert with_retries.tasks == without.tasks == 4
    assert with_retries.spec_bytes == without.spec_bytes
    assert with_retries.status_bytes > 1.8 * without.status_bytes


def test_parallel_for_multiplies_what_runs(tmp_path):
    work = make_work(0)

    @dsl.pipeline(name="stage")
    def stage(x: int) -> int:
        a = work(x=x, note="a")
        b = work(x=a.output, note="b")
        return b.output

    @dsl.pipeline(name="loop")
    def loop():
        with dsl.ParallelFor([1, 2, 3]) as item:
            work(x=item, note="in loop")
        work(x=0, note="after")

    @dsl.pipeline(name="loop-of-stages")
    def loop_of_stages():
        with dsl.ParallelFor([1, 2, 3]) as item:
            stage(x=item)

    @dsl.pipeline(name="no-loop")
    def no_loop():
        work(x=1, note="in loop")
        work(x=0, note="after")

    e = estimate_workflow(compile_to(tmp_path, loop, "loop"))
    assert e.tasks == 3 + 1
    assert e.dag_nodes == 1 + 3  # root + the loop body once per iteration
    # 2 pods per step, root driver, the loop's iteration driver and one item driver per iteration
    assert e.pods == 2 * 4 + 1 + 1 + 3
    flat = estimate_workflow(compile_to(tmp_path, no_loop, "no-loop"))
    assert e.status_bytes > flat.status_bytes

    nested = estimate_workflow(compile_to(tmp_path, loop_of_stages, "loop-of-stages"))
    assert nested.tasks == 3 * 2
    assert nested.dag_nodes == 1 + 3 + 3  # root, 3 loop bodies, 3 sub-pipeline invocations


def test_dynamic_parallel_for_uses_the_default_item_count(tmp_path):
    work = make_work(0)

    @dsl.pipeline(name="dynamic")
    def dynamic(xs: list = [1, 2]):  # noqa: B006 - a pipeline parameter default, as KFP takes it
        with dsl.ParallelFor(xs) as item:
            work(x=item, note="n")

    text = compile_to(tmp_path, dynamic, "dynamic")
    five = estimate_workflow(text, default_parallel_items=5)
    ten = estimate_workflow(text, default_parallel_items=10)
    assert (five.tasks, ten.tasks) == (5, 10)
    assert estimate_workflow(text).tasks == 1
    assert ten.status_bytes - five.status_bytes == pytest.approx(
        five.status_bytes - estimate_workflow(text, default_parallel_items=0).status_bytes, rel=0.05
    )
    assert ten.spec_bytes == five.spec_bytes

    huge = estimate_workflow(text, default_parallel_items=300)
    assert not huge.fits()
    assert not huge.fits(ETCD_REQUEST_LIMIT)
    assert five.fits() and five.fits(ARGO_OBJECT_LIMIT, compressed=True)
    assert huge.compressed_total_bytes < huge.total_bytes


def test_conditions_count_as_taken_worst_case(tmp_path):
    work = make_work(0)

    @dsl.pipeline(name="branches")
    def branches(x: int = 1):
        with dsl.If(x > 1):
            work(x=x, note="then")
        with dsl.Else():
            work(x=x, note="else")

    e = estimate_workflow(compile_to(tmp_path, branches, "branches"))
    assert e.tasks == 2  # both branches counted
    assert e.dag_nodes == 1 + 1 + 2  # root, the condition-branches DAG, each branch's DAG


def test_platform_spec_document_is_read(tmp_path):
    work = make_work(0)

    @dsl.pipeline(name="plain")
    def plain():
        work(x=1, note="n")

    @dsl.pipeline(name="plain")
    def with_secret():
        task = work(x=1, note="n")
        kubernetes.use_secret_as_env(task, secret_name="creds", secret_key_to_env={"token": "TOKEN"})

    text = compile_to(tmp_path, with_secret, "secret")
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert len(docs) == 2  # pipeline spec + platform spec
    from_text = estimate_workflow(text)
    assert estimate_workflow(text.encode()) == from_text
    # parsed documents: the same estimate (package_bytes is then the size of their YAML dump)
    same = {"package_bytes"}
    assert estimate_workflow(docs).model_dump(exclude=same) == from_text.model_dump(exclude=same)
    without_platform = estimate_workflow(docs[0])
    assert from_text.spec_bytes > without_platform.spec_bytes  # the kubernetes-<component> argument
    assert from_text.status_bytes > without_platform.status_bytes  # kubernetes-config input, pod-spec-patch
    base = estimate_workflow(compile_to(tmp_path, plain, "plain"))
    assert base.tasks == from_text.tasks == 1


def test_refuses_what_is_not_a_pipeline():
    with pytest.raises(ValueError, match="not a compiled KFP pipeline"):
        estimate_workflow("just: text\n")


def test_measuring_each_distinct_invocation_once_matches_rendering_every_node(tmp_path):
    """The estimate walks, renders and gzips each distinct DAG invocation once (a sub-pipeline use, a loop
    iteration's body) and counts it as often as it runs; `exhaustive=True` renders every node and gzips the whole
    node map in one stream. They agree: exactly on what runs and on the spec, within a few bytes per invocation
    on the status (node ids are hashes of varying length: 0.01 % here), within a few per cent compressed."""
    from pipelines.package import compile_package
    from pipelines.workflow_size.pipeline_ir import PipelineIR, read_package
    from pipelines.workflow_size.run_nodes import RunNodes
    from pipelines.workflow_size.workflow_spec import WorkflowSpec

    work = make_work(0)
    wide = make_work(40)

    @dsl.pipeline(name="stage")
    def stage(x: int) -> int:
        a = work(x=x, note="a")
        with dsl.ParallelFor([1, 2, 3, 4, 5, 6]) as item:
            wide(x=item, note="shard")
        b = work(x=a.output, note="b")
        return b.output

    @dsl.pipeline(name="stages")
    def stages(x: int = 0):
        out = x
        for _ in range(12):
            out = stage(x=out).output
        with dsl.ParallelFor([7, 8, 9]) as item:
            stage(x=item)

    copies = compile_to(tmp_path, stages, "copies")  # KFP's compiler: a copy of the stage's components per use
    compile_package(stages, tmp_path / "folded.yaml")  # star compile: the copies folded back into one definition
    folded = (tmp_path / "folded.yaml").read_text()
    for text in (copies, folded):
        for retries in (True, False):
            fast = estimate_workflow(text, argo_template_retries=retries)
            every = estimate_workflow(text, argo_template_retries=retries, exhaustive=True)
            exact = {"package_bytes", "tasks", "dag_nodes", "argo_nodes", "pods", "spec_bytes"}
            assert fast.model_dump(include=exact) == every.model_dump(include=exact)
            assert every.tasks == 15 * (2 + 6) and every.dag_nodes == 1 + 12 + 3 + 3 + 15 * 6
            assert fast.status_bytes == pytest.approx(every.status_bytes, rel=1e-3)
            assert fast.total_bytes == pytest.approx(every.total_bytes, rel=1e-3)
            assert fast.compressed_total_bytes == pytest.approx(every.compressed_total_bytes, rel=0.03)

    # ... and with one stage definition, the fast path walked a few distinct invocations (the iteration index and
    # the node names have one digit or two), not each of the 109 DAG invocations
    spec, platform, _ = read_package(folded)
    ir = PipelineIR(spec, platform)
    top = RunNodes(ir, WorkflowSpec(ir), 1, True, reuse=True).run()
    invocations = list(top.every_group())
    assert len(invocations) == 1 + 109  # the top group (entrypoint, root driver) and one per DAG invocation
    assert len({id(g) for g in invocations}) <= 12
