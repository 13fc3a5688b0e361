"""The edge contract, once for every transport (``streamflow._transport.Edge``).

Each test runs over every edge class: the in-process queue, shared-memory
slots with and without ``max_message_size``, and the Ray channel.  Producers
and consumers are threads of this process; the contract is the same across
processes, which the flow tests cover.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streamflow._transport import Aborted, DownstreamClosed, Edge, _clock, _spin
from streamflow._transport._local import LocalEdge
from streamflow._transport._memory import new_run_id, sweep
from streamflow._transport._serialize import Reader
from streamflow._transport._shm import ShmEdge

pytestmark = pytest.mark.timeout(30)

MakeEdge = Callable[[int, int, int], Edge]


def _shm(max_message_size: int | None) -> MakeEdge:
    def make(capacity: int, producers: int, consumers: int) -> Edge:
        return ShmEdge(
            name="edge",
            capacity=capacity,
            producers=producers,
            consumers=consumers,
            max_message_size=max_message_size,
            shared_buffer=False,
            run_id=new_run_id(),
            forked=True,
            reader=Reader.CALLER,
        )

    return make


def _ray(request: pytest.FixtureRequest) -> MakeEdge:
    pytest.importorskip("ray")
    request.getfixturevalue("ray_cluster")
    request.node.add_marker(pytest.mark.foreign_fds)
    from streamflow._transport._ray import RayEdge

    def make(capacity: int, producers: int, consumers: int) -> Edge:
        return RayEdge(
            key=(new_run_id(), 0),
            name="edge",
            capacity=capacity,
            producers=producers,
            consumers=consumers,
            shared_buffer=False,
            reader=Reader.CALLER,
        )

    return make


@pytest.fixture(params=["local", "shm-slots", "shm-unbounded", "ray"])
def make_edge(request: pytest.FixtureRequest) -> Iterator[MakeEdge]:
    """A factory of edges of one transport; every edge made is closed afterwards."""
    made: list[Edge] = []
    factories: dict[str, Callable[[], MakeEdge]] = {
        "local": lambda: lambda c, p, n: LocalEdge(c, p, n),
        "shm-slots": lambda: _shm(4096),
        "shm-unbounded": lambda: _shm(None),
        "ray": lambda: _ray(request),
    }
    factory = factories[request.param]()

    def make(capacity: int, producers: int = 1, consumers: int = 1) -> Edge:
        edge = factory(capacity, producers, consumers)
        made.append(edge)
        return edge

    yield make
    for edge in made:
        edge.close()
        run_id = getattr(edge, "run_id", None)
        if run_id is not None:
            sweep(run_id)


class Producer(threading.Thread):
    """Sends ``items`` through one sender of ``edge``, counting what it sent."""

    def __init__(self, edge: Edge, endpoint: int, items: list[Any], close: bool = True) -> None:
        super().__init__(daemon=True)
        self.sender = edge.sender(endpoint)
        self.items, self.close = items, close
        self.sent = 0
        self.progress = threading.Condition()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for item in self.items:
                self.sender.reserve()
                self.sender.send(item)
                with self.progress:
                    self.sent += 1
                    self.progress.notify_all()
            if self.close:
                self.sender.close()
        except BaseException as exc:  # noqa: BLE001 - checked by the test
            self.error = exc

    def wait_sent(self, count: int) -> None:
        with self.progress:
            assert self.progress.wait_for(lambda: self.sent >= count, timeout=10), f"sent {self.sent}"


def _blocked(thread: threading.Thread) -> bool:
    """Whether ``thread`` stays blocked (a negative can only be checked with a wait)."""
    thread.join(0.3)
    return thread.is_alive()


def test_a_producer_holds_at_most_capacity_packets(make_edge: MakeEdge) -> None:
    edge = make_edge(3)
    producer = Producer(edge, 0, list(range(10)))
    producer.start()
    producer.wait_sent(3)
    assert _blocked(producer) and producer.sent == 3
    receiver = edge.receiver(0)
    for index in range(10):
        assert next(receiver) == index
        # Asking for packet ``index`` may have released the slots of those before it.
        assert producer.sent <= 3 + index
    producer.join(10)
    with pytest.raises(StopIteration):
        next(receiver)
    receiver.finish()
    assert producer.error is None


def test_capacity_one_is_lockstep(make_edge: MakeEdge) -> None:
    edge = make_edge(1)
    producer = Producer(edge, 0, ["a", "b", "c"])
    producer.start()
    producer.wait_sent(1)
    receiver = edge.receiver(0)
    assert next(receiver) == "a"
    assert _blocked(producer) and producer.sent == 1  # "a" is still being consumed
    assert next(receiver) == "b"  # asking for it freed the slot "a" held
    producer.wait_sent(2)
    assert _blocked(producer) and producer.sent == 2
    assert next(receiver) == "c"
    producer.join(10)
    with pytest.raises(StopIteration):
        next(receiver)
    receiver.finish()
    assert producer.error is None


@pytest.mark.parametrize("consumers", [1, 2])
def test_a_slot_carries_every_kind_of_message_in_turn(make_edge: MakeEdge, consumers: int) -> None:
    """One slot reused by plain pickles, out-of-band buffers and large messages, in every order."""
    np = pytest.importorskip("numpy")
    edge = make_edge(1, 1, consumers)
    kinds = [{"a": 1}, np.arange(300, dtype=np.int32), "x" * 3000, np.arange(5.0), {"b": [2]}, "y", b"z" * 3500]
    if isinstance(edge, ShmEdge) and edge.limit is None:
        kinds.append(b"o" * 100_000)  # over the default slot: an overflow segment
    items = kinds + kinds[::-1] + kinds
    producer = Producer(edge, 0, items)
    producer.start()
    received = list(edge.receiver(0))
    for index in range(1, consumers):
        edge.receiver(index).finish()
    producer.join(10)
    assert producer.error is None
    assert len(received) == len(items)
    for got, sent in zip(received, items):
        if isinstance(sent, np.ndarray):
            assert np.array_equal(got, sent)
        else:
            assert got == sent


def test_each_producers_packets_arrive_in_order(make_edge: MakeEdge) -> None:
    edge = make_edge(4, 3, 1)
    producers = [Producer(edge, p, [(p, i) for i in range(50)]) for p in range(3)]
    for producer in producers:
        producer.start()
    received = list(edge.receiver(0))
    for producer in producers:
        producer.join(10)
        assert producer.error is None
    assert len(received) == 150
    for p in range(3):
        assert [i for q, i in received if q == p] == list(range(50))


def test_the_stream_ends_when_every_producer_closed(make_edge: MakeEdge) -> None:
    edge = make_edge(4, 2, 2)
    first = Producer(edge, 0, [1, 2, 3])
    last = Producer(edge, 1, [4, 5], close=False)
    first.start()
    last.start()
    receivers = [edge.receiver(0), edge.receiver(1)]
    got: list[list[int]] = [[], []]

    def consume(index: int) -> None:
        for item in receivers[index]:
            got[index].append(item)

    consumers = [threading.Thread(target=consume, args=(i,), daemon=True) for i in range(2)]
    for consumer in consumers:
        consumer.start()
    first.join(10)
    last.join(10)
    assert all(_blocked(c) for c in consumers)  # one producer has not closed yet
    last.sender.close()
    for consumer in consumers:
        consumer.join(10)
        assert not consumer.is_alive()
    assert sorted(got[0] + got[1]) == [1, 2, 3, 4, 5]


def test_abort_wakes_a_blocked_sender_and_a_blocked_receiver(make_edge: MakeEdge) -> None:
    full = make_edge(1)
    producer = Producer(full, 0, [1, 2])
    producer.start()
    producer.wait_sent(1)
    empty = make_edge(1)
    raised: list[BaseException] = []

    def receive() -> None:
        try:
            next(empty.receiver(0))
        except BaseException as exc:  # noqa: BLE001
            raised.append(exc)

    consumer = threading.Thread(target=receive, daemon=True)
    consumer.start()
    assert _blocked(producer) and _blocked(consumer)
    full.abort()
    empty.abort()
    producer.join(10)
    consumer.join(10)
    assert isinstance(producer.error, Aborted)
    assert len(raised) == 1 and isinstance(raised[0], Aborted)


def test_a_producer_learns_when_every_consumer_stopped(make_edge: MakeEdge) -> None:
    edge = make_edge(1, 1, 2)
    producer = Producer(edge, 0, list(range(10)))
    producer.start()
    first, second = edge.receiver(0), edge.receiver(1)
    assert next(first) == 0
    first.finish()
    assert _blocked(producer)
    second.finish()
    producer.join(10)
    assert isinstance(producer.error, DownstreamClosed)


def test_an_unused_reservation_is_given_back(make_edge: MakeEdge) -> None:
    edge = make_edge(1)
    sender = edge.sender(0)
    sender.reserve()
    sender.unreserve()
    sender.reserve()  # the one slot is free again
    sender.send("only")
    sender.close()
    assert list(edge.receiver(0)) == ["only"]


def test_moved_counts_packets(make_edge: MakeEdge) -> None:
    edge = make_edge(4)
    before = edge.moved()
    sender = edge.sender(0)
    for item in range(3):
        sender.reserve()
        sender.send(item)
    sender.close()
    assert list(edge.receiver(0)) == [0, 1, 2]
    assert edge.moved() != before


def test_only_waits_that_block_are_timed(
    make_edge: MakeEdge, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A free slot or a waiting packet reads no clock; a wait that blocks is timed on the end's clock."""
    if request.node.callspec.params["make_edge"] == "ray":
        pytest.skip("a Ray end times every call it makes to the edge's hub")
    reads: list[float] = []  # ``with clock:`` around a wait (threads' ends)
    spin_reads: list[int] = []  # inside the spin loop, which times the waits of ends between processes

    def counted() -> float:
        reads.append(time.perf_counter())
        return reads[-1]

    def spin_counted() -> int:
        spin_reads.append(time.perf_counter_ns())
        return spin_reads[-1]

    monkeypatch.setattr(_clock, "perf_counter", counted)
    monkeypatch.setattr(_spin, "_now", spin_counted)
    edge = make_edge(4)
    sender, receiver = edge.sender(0), edge.receiver(0)
    for item in range(3):
        sender.reserve()
        sender.send(item)
    assert [next(receiver) for _ in range(3)] == [0, 1, 2]
    assert reads == [] and spin_reads == []

    taken: list[Any] = []
    consumer = threading.Thread(target=lambda: taken.append(next(receiver)), daemon=True)
    consumer.start()
    assert _blocked(consumer)
    sender.reserve()
    sender.send(3)
    consumer.join(10)
    assert taken == [3]
    if isinstance(edge, ShmEdge):
        assert reads == [] and len(spin_reads) >= 2  # the wait's start and end, and the spin's looks
    else:
        assert len(reads) == 2 and spin_reads == []
    assert receiver.clock.total > 0.2 and receiver.clock.since == 0.0
    assert sender.clock.total == 0.0


def test_a_numbered_edge_numbers_its_packets_across_consumers(
    make_edge: MakeEdge, request: pytest.FixtureRequest
) -> None:
    """Every number is given once, in the edge's order, to a packet, to a slot a producer gave
    back unused (``gap``: shared memory only), or to a consumer's end, after every packet."""
    kind = request.node.callspec.params["make_edge"]
    if kind == "ray":
        pytest.skip("Ray's hub keeps an ordered stage's order itself")
    edge = LocalEdge(8, 2, 2, numbered=True) if kind == "local" else make_edge(8, 2, 2)
    assert edge.numbered
    first, second = edge.sender(0), edge.sender(1)
    for sender, item in [(first, "a"), (second, "b"), (first, "c")]:
        sender.reserve()
        sender.send(item)
    second.reserve()
    second.unreserve()
    first.reserve()
    first.send("d")
    first.close()
    second.close()
    receivers = [edge.receiver(0), edge.receiver(1)]
    gaps: list[int] = []
    for receiver in receivers:
        receiver.gap = gaps.append  # type: ignore[attr-defined]
    got = []
    for receiver in [receivers[0], receivers[1], receivers[0], receivers[1]]:
        got.append((next(receiver), receiver.position))  # type: ignore[attr-defined]
    ends = []
    for receiver in receivers:
        with pytest.raises(StopIteration):
            next(receiver)
        ends.append(receiver.position)  # type: ignore[attr-defined]
    if kind == "local":  # the slot given back takes no number
        assert got == [("a", 0), ("b", 1), ("c", 2), ("d", 3)] and gaps == [] and ends == [4, 4]
    else:
        assert got == [("a", 0), ("b", 1), ("c", 2), ("d", 4)] and gaps == [3] and ends == [5, 6]


def test_numbers_follow_the_order_packets_arrive_in_from_several_producers() -> None:
    """Threads that send at once: a consumer alone gets the numbers 0, 1, 2, ... in turn."""
    edge = LocalEdge(64, 4, 1, numbered=True)
    producers = [Producer(edge, i, list(range(2000))) for i in range(4)]
    receiver = edge.receiver(0)
    numbers = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between any two steps that let them
    try:
        for producer in producers:
            producer.start()
        for _ in receiver:
            numbers.append(receiver.position)  # type: ignore[attr-defined]
    finally:
        sys.setswitchinterval(interval)
    for producer in producers:
        producer.join(10)
        assert producer.error is None
    assert numbers == list(range(8000))
