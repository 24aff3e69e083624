"""The size of the Workflow's status at the end of the run: `status.nodes` as JSON, or gzipped and base64'd into
`status.compressedNodes` as Argo stores it once the object passes its limit (workflow/packer/packer.go), plus the
rest of the status.

Each distinct node group (`run_nodes.NodeGroup`, one DAG invocation) is rendered and measured once and counted as
often as it runs. Compressed, the node map is one deflate stream whose window is 32 KB: a group's nodes are
deflated after what precedes them in that window (the end of the previous iteration, the parent's driver nodes),
as a preset dictionary, and an invocation that follows the same context as one already measured (digits aside)
costs the same. `exhaustive` renders every node of a walk without reuse and gzips the node map in one stream:
the reference the grouped measure is tested against."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from pipelines.workflow_size.go_json import compact, nbytes, size
from pipelines.workflow_size.run_nodes import NodeGroup
from pipelines.workflow_size.upstream_constants import (
    ARTIFACT_REPOSITORY,
    DEFLATE_WINDOW_BYTES,
    GZIP_FRAME_BYTES,
    NAMESPACE,
    RESOURCES_DURATION,
    TIMESTAMP,
)

_DIGITS = b"0123456789"
_DIGIT_RUN = re.compile(rb"[0-9]+")
_ROTATE = bytes.maketrans(_DIGITS, b"1234567890")
_LEAD_BYTES = 4 * 1024  # of the window compressed again in front of a run, to measure the run's share of a block
_CONTEXT_BYTES = 24 * 1024  # of the 32 KB window once its digits are left out


@dataclass(frozen=True)
class StatusSize:
    """What a run's node status holds and how big the status is (compact JSON bytes)."""

    argo_nodes: int
    pods: int
    #: executor tasks that run and DAG invocations
    tasks: int
    dags: int
    #: the status with `nodes`, and with `compressedNodes` instead
    plain_bytes: int
    packed_bytes: int


@dataclass
class _Tally:
    nodes: int = 0
    pods: int = 0
    tasks: int = 0
    dags: int = 0
    node_bytes: int = 0  # `,"<id>":{node}` per node
    completion_bytes: int = 0  # `,"<id>":true` per pod (status.taskResultsCompletionStatus)

    def add(self, other: _Tally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def measure_status(top: NodeGroup, *, exhaustive: bool = False) -> StatusSize:
    """The status size of the run whose nodes `top` holds (`RunNodes.run()`; `exhaustive` needs a walk without
    `reuse`, in which every group stands for one invocation)."""
    if exhaustive:
        return _measure_every_node(top)
    texts = _NodeTexts()
    total = _total(top, {}, texts)
    completion = 2 + total.completion_bytes - (1 if total.pods else 0)
    top_bytes = _top_bytes(total.pods) - 2 + completion
    nodes_bytes = 2 + total.node_bytes - (1 if total.nodes else 0)
    compressed = _Deflated(texts).group(top, b"")[0] + GZIP_FRAME_BYTES + 2
    return _status(total, top_bytes, nodes_bytes, compressed)


class _NodeTexts:
    """The `,"<id>":{node}` text of each node of a group, rendered once per distinct group."""

    def __init__(self) -> None:
        self._texts: dict[int, list[str]] = {}

    def __call__(self, group: NodeGroup) -> list[str]:
        texts = self._texts.get(id(group))
        if texts is None:
            texts = self._texts[id(group)] = ["," + compact(n["id"]) + ":" + compact(n) for n in group.nodes()]
        return texts


def _total(group: NodeGroup, totals: dict[int, _Tally], texts: _NodeTexts) -> _Tally:
    """The tally of one invocation of `group`, its nested invocations included (each distinct group measured once)."""
    done = totals.get(id(group))
    if done is not None:
        return done
    total = _Tally(tasks=group.tasks, dags=group.dags)
    for nested in group.nested():
        total.add(_total(nested, totals, texts))
    for node, text in zip(group.nodes(), texts(group), strict=True):
        total.nodes += 1
        total.node_bytes += nbytes(text)
        if node["type"] == "Pod":
            total.pods += 1
            total.completion_bytes += nbytes(compact(node["id"])) + 6
    totals[id(group)] = total
    return total


class _Deflated:
    """Deflated bytes of the node stream, measured one run of a group's own nodes at a time, each after what the
    deflate window holds before it, as a preset dictionary. A group walked once stands for all its invocations
    (`RunNodes` with `reuse`), so its node ids would repeat where the real ids differ: in front of a group, the
    ids of its nodes (and their pod names) are changed. What was measured once after the same context, digits
    aside (node ids, indexes, iteration numbers), costs what it cost then."""

    def __init__(self, texts: _NodeTexts) -> None:
        self._texts = texts
        self._groups: dict[tuple[int, bytes], tuple[int, bytes]] = {}
        self._runs: dict[tuple[bytes, bytes], int] = {}
        self._hashes: dict[int, frozenset[bytes]] = {}

    def group(self, group: NodeGroup, window: bytes) -> tuple[int, bytes]:
        """(deflated bytes of one invocation of `group` after `window`, the window after it)."""
        key = (id(group), _context(window))
        measured = self._groups.get(key)
        if measured is not None:
            return measured
        window = _other_ids(window, self._node_hashes(group))
        cost = 0
        run: list[str] = []
        texts = iter(self._texts(group))
        for item in group.items:
            if isinstance(item, NodeGroup):
                if run:
                    cost, window = self._run(cost, "".join(run).encode("utf-8"), window)
                    run = []
                nested, window = self.group(item, window)
                cost += nested
            else:
                run.append(next(texts))
        if run:
            cost, window = self._run(cost, "".join(run).encode("utf-8"), window)
        self._groups[key] = cost, window
        return cost, window

    def _run(self, cost: int, data: bytes, window: bytes) -> tuple[int, bytes]:
        key = (data.translate(None, _DIGITS), _context(window))
        measured = self._runs.get(key)
        if measured is None:
            measured = self._runs[key] = _deflated(data, window)
        return cost + measured, (window + data)[-DEFLATE_WINDOW_BYTES:]

    def _node_hashes(self, group: NodeGroup) -> frozenset[bytes]:
        """The hash part of the ids of a group's nodes, nested ones included (also the suffix of its pod names)."""
        hashes = self._hashes.get(id(group))
        if hashes is None:
            own = {n["id"].rpartition("-")[2].encode() for n in group.nodes()}
            hashes = self._hashes[id(group)] = frozenset(own.union(*map(self._node_hashes, group.nested())))
        return hashes


def _deflated(data: bytes, window: bytes) -> int:
    """Deflated bytes of `data` where it follows `window` in one stream: compressed after the end of the window
    (the rest a preset dictionary), less the cost of that end alone, so that a block header is not counted for
    each run; at the start of the stream, compressed alone."""
    if not window:
        return _deflate(data, b"")
    lead = window[-_LEAD_BYTES:]
    head = window[: -len(lead)]
    return _deflate(lead + data, head) - _deflate(lead, head)


def _deflate(data: bytes, dictionary: bytes) -> int:
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, **({"zdict": dictionary} if dictionary else {}))
    return len(deflate.compress(data)) + len(deflate.flush())


def _other_ids(window: bytes, hashes: frozenset[bytes]) -> bytes:
    """`window` with each of these node id hashes changed (the same digits rotated)."""
    return _DIGIT_RUN.sub(lambda m: m[0].translate(_ROTATE) if m[0] in hashes else m[0], window)


def _context(window: bytes) -> bytes:
    """What the deflated size of what comes next depends on, digits aside: the end of the window without its
    digits (node ids are hashes of varying length)."""
    return window.translate(None, _DIGITS)[-_CONTEXT_BYTES:]


def _measure_every_node(top: NodeGroup) -> StatusSize:
    """Render every node and gzip the whole node map in one stream."""
    nodes = list(top.every_node())
    total = _Tally(tasks=sum(g.tasks for g in top.every_group()), dags=sum(g.dags for g in top.every_group()))
    total.nodes = len(nodes)
    total.pods = sum(1 for n in nodes if n["type"] == "Pod")
    completion = {n["id"]: True for n in nodes if n["type"] == "Pod"}
    top_bytes = _top_bytes(total.pods) - 2 + size(completion)
    gzip = zlib.compressobj(6, zlib.DEFLATED, 31)
    nodes_bytes = 2  # {}
    compressed = 0
    for i, node in enumerate(nodes):
        text = ("," if i else "") + compact(node["id"]) + ":" + compact(node)
        nodes_bytes += nbytes(text)
        compressed += len(gzip.compress(text.encode("utf-8")))
    compressed += len(gzip.flush()) + 2
    return _status(total, top_bytes, nodes_bytes, compressed)


def _status(total: _Tally, top_bytes: int, nodes_bytes: int, compressed: int) -> StatusSize:
    return StatusSize(
        argo_nodes=total.nodes,
        pods=total.pods,
        tasks=total.tasks,
        dags=total.dags,
        plain_bytes=top_bytes + len(',"nodes":') + nodes_bytes,
        packed_bytes=top_bytes + len(',"compressedNodes":""') + 4 * ((compressed + 2) // 3),
    )


def _top_bytes(pods: int) -> int:
    """The status without its nodes, its taskResultsCompletionStatus empty (`{}`)."""
    top = {
        "artifactGCStatus": {"notSpecified": True},
        "artifactRepositoryRef": {
            "artifactRepository": ARTIFACT_REPOSITORY,
            "configMap": "artifact-repositories",
            "key": "default-v1",
            "namespace": NAMESPACE,
        },
        "conditions": [{"status": "False", "type": "PodRunning"}, {"status": "True", "type": "Completed"}],
        "finishedAt": TIMESTAMP,
        "phase": "Succeeded",
        "progress": f"{pods}/{pods}",
        "resourcesDuration": RESOURCES_DURATION,
        "startedAt": TIMESTAMP,
        "taskResultsCompletionStatus": {},
    }
    return size(top)
