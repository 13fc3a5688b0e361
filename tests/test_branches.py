"""Branches (SPEC section 12): tee, route, zip, merge, dead letters, on every backend."""

from __future__ import annotations

import collections
import warnings
from typing import Any

import pytest

import streamflow as sf

from .branch_stages import (
    collect,
    count,
    double,
    evens,
    fail_on,
    item_of,
    jitter,
    letters,
    neg,
    nums,
    pair,
    parity,
    slow,
    text,
    thrice,
    total,
)
from .conftest import scaled
from .test_failures import RECOVERING, _opts, dies_on

pytestmark = pytest.mark.timeout(120)


def _bag(items: Any) -> collections.Counter[Any]:
    return collections.Counter(items)


# -- tee ---------------------------------------------------------------------------------


def test_tee_gives_every_item_to_every_branch(opts: dict[str, Any]) -> None:
    n = scaled(opts, 200)
    got = (nums(n=n) | sf.tee(double, text) | collect).run(**opts)
    assert _bag(got) == _bag([2 * x for x in range(n)] + [str(x) for x in range(n)])


def test_a_tee_of_sinks_returns_their_results_in_branch_order(opts: dict[str, Any]) -> None:
    n = scaled(opts, 100)
    flow = nums(n=n) | sf.tee(double | total, count, evens | collect)
    assert isinstance(flow, sf.ClosedFlow)
    assert flow.run(**opts) == (n * (n - 1), n, list(range(0, n, 2)))


def test_open_and_closed_branches_mix_and_run_results_has_every_sink(opts: dict[str, Any]) -> None:
    n = scaled(opts, 50)
    run = (nums(n=n) | sf.tee(double | total, neg)).start(**opts)
    assert sorted(run) == sorted(-x for x in range(n))
    assert run.results == {"total": n * (n - 1)}


def test_a_diamond_with_filters_many_outputs_and_a_batch(opts: dict[str, Any]) -> None:
    n = scaled(opts, 150)
    branches = sf.tee(evens, thrice, sf.batch(7) | sf.unbatch(), double.options(workers=2))
    got = (nums(n=n) | branches | neg | collect).run(**opts)
    expected = [x for x in range(n) if x % 2 == 0] + 3 * list(range(n)) + list(range(n)) + [2 * x for x in range(n)]
    assert _bag(got) == _bag(-x for x in expected)


def test_a_branch_far_slower_than_its_sibling_sets_the_pace_and_loses_nothing(opts: dict[str, Any]) -> None:
    n = scaled(opts, 60)
    flow = nums(n=n) | sf.tee(slow(seconds=0.004), double) | collect
    got = flow.run(**opts)
    assert _bag(got) == _bag(list(range(n)) + [2 * x for x in range(n)])


def test_lockstep_everywhere_still_ends(opts: dict[str, Any]) -> None:
    n = scaled(opts, 40)
    one = {"packets_in_flight": 1}
    flow = (
        nums(n=n).options(**one)
        | sf.tee(double.options(**one) | evens.options(**one), thrice.options(**one), packets_in_flight=1)
        | neg.options(**one)
        | collect
    )
    got = flow.run(**opts)
    assert _bag(got) == _bag([-2 * x for x in range(n)] + [-x for x in range(n) for _ in range(3)])


def test_blocks_nest(opts: dict[str, Any]) -> None:
    n = scaled(opts, 40)
    inner = sf.route(parity, {0: double, 1: neg})
    flow = nums(n=n) | sf.tee(inner | sf.tee(text, double), evens | count)
    run = flow.start(**opts)
    got = list(run)
    routed = [2 * x if x % 2 == 0 else -x for x in range(n)]
    assert _bag(got) == _bag([str(x) for x in routed] + [2 * x for x in routed])
    assert run.results == {"count": len(range(0, n, 2))}


# -- route -------------------------------------------------------------------------------


def test_route_sends_each_item_down_one_branch(opts: dict[str, Any]) -> None:
    n = scaled(opts, 100)
    got = (nums(n=n) | sf.route(parity, {0: double, 1: text}) | collect).run(**opts)
    assert _bag(got) == _bag([2 * x for x in range(0, n, 2)] + [str(x) for x in range(1, n, 2)])


def test_a_route_of_sinks_returns_a_dict_by_key_and_the_default_under_none(opts: dict[str, Any]) -> None:
    n = scaled(opts, 30)
    flow = nums(n=n) | sf.route(lambda x: x % 3, {0: total, 1: count}, default=collect)
    assert flow.run(**opts) == {0: sum(range(0, n, 3)), 1: len(range(1, n, 3)), None: list(range(2, n, 3))}


def test_a_predicate_routes_with_true_and_false(opts: dict[str, Any]) -> None:
    n = scaled(opts, 30)
    flow = nums(n=n) | sf.route(lambda x: x < 10, {True: count, False: total})
    assert flow.run(**opts) == {True: 10, False: sum(range(10, n))}


def test_an_unrouted_item_stops_the_run_naming_it_and_the_keys(opts: dict[str, Any]) -> None:
    with pytest.raises(sf.UnroutedItem, match=r"sf.route has no branch for key 2 of item 2 .* its keys are: 0, 1") as caught:
        (nums(n=10) | sf.route(lambda x: x % 3, {0: double, 1: neg}) | collect).run(**opts)
    assert isinstance(caught.value, KeyError)


def test_an_unrouted_item_is_skipped_and_recorded_under_skip(opts: dict[str, Any]) -> None:
    flow = nums(n=9) | sf.route(lambda x: x % 3, {0: double, 1: neg}, on_error="skip") | collect
    with pytest.warns(sf.FailuresWarning, match="'sf.route' skipped 3 items"):
        run = flow.start(**opts)
        got = run.result()
    assert sorted(got) == sorted([0, 6, 12, -1, -4, -7])
    assert sorted(f.item for f in run.failures) == [2, 5, 8]
    assert all(isinstance(f.error, sf.UnroutedItem) and f.stage == "sf.route" for f in run.failures)


# -- zip ---------------------------------------------------------------------------------


def test_zip_gives_one_tuple_per_input_in_input_order(opts: dict[str, Any]) -> None:
    n = scaled(opts, 100)
    assert (nums(n=n) | sf.zip(double, text, neg)).run(**opts) == [(2 * x, str(x), -x) for x in range(n)]


def test_zip_with_several_workers_per_branch_and_random_delays_keeps_input_order(parallel_opts: dict[str, Any]) -> None:
    n = scaled(parallel_opts, 120)
    flow = (
        nums(n=n)
        | sf.zip(jitter.options(workers=3) | double, jitter.options(workers=2) | text)
        | collect.options(name="pairs")
    )
    assert flow.run(**parallel_opts) == [(2 * x, str(x)) for x in range(n)]
    # Several workers feeding the zip, and several reading it, each taking whole tuples.
    flow = nums(n=n) | jitter.options(workers=2) | sf.zip(double, text) | pair.options(workers=2) | collect
    assert sorted(flow.run(**parallel_opts)) == [(2 * x, str(x)) for x in range(n)]


def test_an_input_skipped_in_a_branch_gives_no_tuple_and_is_recorded_once_a_branch(opts: dict[str, Any]) -> None:
    bad_a, bad_b = frozenset({3, 7}), frozenset({7, 9})
    flow = nums(n=12) | sf.zip(
        fail_on(bad=bad_a).options(on_error="skip", name="a"),
        fail_on(bad=bad_b).options(on_error="skip", name="b") | text,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sf.FailuresWarning)
        run = flow.start(**opts)
        got = run.result()
    assert got == [(x, str(x)) for x in range(12) if x not in bad_a | bad_b]
    assert sorted((f.stage, f.item) for f in run.failures) == [("a", 3), ("a", 7), ("b", 7), ("b", 9)]


def test_a_zip_followed_by_a_block_is_joined_first(opts: dict[str, Any]) -> None:
    flow = nums(n=10) | sf.zip(double, neg) | sf.tee(count, collect)
    assert flow.run(**opts) == (10, [(2 * x, -x) for x in range(10)])


# -- merge -------------------------------------------------------------------------------


def test_merge_interleaves_its_flows_and_ends_with_the_last(opts: dict[str, Any]) -> None:
    n = scaled(opts, 50)
    flow = sf.merge(nums(n=n), nums(n=n) | double, [1000, 1001]) | neg | collect
    expected = [-x for x in range(n)] + [-2 * x for x in range(n)] + [-1000, -1001]
    assert _bag(flow.run(**opts)) == _bag(expected)


def test_merge_reads_a_generator_in_the_caller(opts: dict[str, Any]) -> None:
    got = (sf.merge((x for x in range(5)), nums(n=3)) | count).run(**opts)
    assert got == 8


# -- dead letters ------------------------------------------------------------------------


def test_failed_items_enter_the_dead_letter_branch_and_no_warning_is_issued(opts: dict[str, Any]) -> None:
    bad = frozenset({2, 5})
    stage = fail_on(bad=bad).options(on_error=letters, workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sf.FailuresWarning)
        run = (nums(n=10) | stage | total).start(**opts)
        assert run.result() == sum(x for x in range(10) if x not in bad)
    assert sorted(item for _, item, _ in run.results["letters"]) == [2, 5]
    assert {(stage, kind) for stage, _, kind in run.results["letters"]} == {("fail_on", "ValueError")}
    assert sorted(f.item for f in run.failures) == [2, 5]


def test_a_dead_letter_branch_can_be_a_flow_after_retries(opts: dict[str, Any]) -> None:
    stage = fail_on(bad=frozenset({4})).options(retries=1, retry_delay=0.0, on_error=item_of | collect)
    run = (nums(n=6) | stage | count).start(**opts)
    assert run.result() == 5
    (letter,) = [value for name, value in run.results.items() if name != "count"]
    assert letter == [4]
    assert run.failures[0].attempts == 2


# -- types and shapes ----------------------------------------------------------------------


def test_each_branch_is_checked_against_what_enters_the_block() -> None:
    with pytest.raises(sf.FlowTypeError, match=r"cannot connect 'text' -> 'double': 'text' yields str, 'double' consumes int"):
        nums(n=1) | sf.tee(double, text | double)
    assert (nums(n=1) | sf.tee(double, text)).output_type == int | str
    assert (nums(n=1) | sf.zip(double, text)).output_type == tuple[int, str]
    assert (nums(n=1) | sf.tee(total, count)).output_type == tuple[int, int]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: nums(n=1) | sf.tee(double, nums(n=2)), r"branch 2 of sf.tee starts with source 'nums'"),
        (lambda: nums(n=1) | sf.zip(double, evens), r"branch 2 of sf.zip holds 'evens', which is not a map stage"),
        (lambda: nums(n=1) | sf.merge(nums(n=2), nums(n=3)), "sf.merge starts a chain"),
        (lambda: sf.merge(nums(n=2), double), r"branch 2 of sf.merge starts with 'double', which needs an input"),
        (lambda: nums(n=1) | double.options(on_error=double), r"dead-letter branch of 'double' ends in 'double', not a sink"),
        (lambda: nums(n=1) | double.options(on_error=total), r"'failures of double' yields Failure, 'total' consumes int"),
        (lambda: sf.route(parity, [double]), "sf.route takes its branches as a dict"),
    ],
)
def test_what_cannot_be_a_branch_is_a_flow_type_error(build: Any, match: str) -> None:
    with pytest.raises(sf.FlowTypeError, match=match):
        build()


def test_a_block_reads_like_the_code_that_built_it() -> None:
    flow = nums(n=3) | sf.tee(double | total, text) | collect
    assert repr(flow) == "nums(n=3) | sf.tee(double | total, text) | collect"
    assert repr(sf.route(parity, {0: double, 1: neg})) == "sf.route(parity, {0: double, 1: neg})"


def test_stats_report_and_pictures_show_the_graph(parallel_opts: dict[str, Any]) -> None:
    flow = nums(n=20) | sf.tee(double, double | neg) | collect
    run = flow.start(**parallel_opts)
    run.result()
    names = [s.stage for s in run.stats()]
    assert names == ["nums", "double", "double#2", "neg", "collect"]
    assert "bottleneck" in run.report()
    dot = run.to_dot()
    assert dot.count("->") == 5  # nums to each double, double#2 to neg, double and neg to collect
    svg = run._repr_svg_()
    assert svg.count("<rect") == 5 and svg.count("<polyline") == 5


# -- failures and stops across branches ------------------------------------------------


def test_the_first_error_in_a_branch_stops_every_branch(opts: dict[str, Any]) -> None:
    flow = nums(n=1000) | sf.tee(fail_on(bad=frozenset({30})), slow(seconds=0.001)) | count
    with pytest.raises(ValueError, match="bad item 30") as caught:
        flow.run(**opts)
    assert "raised in stage 'fail_on' (worker 1 of 1)" in caught.value.__notes__


def test_break_and_cancel_stop_every_branch(parallel_opts: dict[str, Any]) -> None:
    flow = nums(n=100_000) | sf.tee(double, sf.route(parity, {0: neg, 1: text}))
    with flow.iter(**parallel_opts) as items:
        for seen, _ in enumerate(items):
            if seen == 20:
                break
    run = (nums(n=100_000) | sf.tee(double | count, slow(seconds=0.001) | count)).start(**parallel_opts)
    run.cancel()
    assert run.done()


def test_inactivity_timeout_covers_a_stuck_branch(parallel_opts: dict[str, Any]) -> None:
    if parallel_opts["backend"] == "ray":
        pytest.skip("a stuck branch takes seconds to time out on Ray's hub")
    stuck = 2.0 if parallel_opts["backend"] == "thread" else 30.0  # a thread cannot be ended: it must end itself
    flow = nums(n=10) | sf.tee(double, slow(seconds=stuck)) | count
    with pytest.raises(sf.InactivityError, match="no packet moved"):
        flow.run(inactivity_timeout=0.5, shutdown_timeout=0.2, **parallel_opts)


@pytest.mark.parametrize("name", RECOVERING)
def test_a_worker_that_dies_in_a_branch_is_replaced_and_its_item_goes_to_the_dead_letters(
    name: str, request: pytest.FixtureRequest
) -> None:
    opts = _opts(request, name)
    stage = dies_on(bad=frozenset({4, 11})).options(on_error=letters, workers=2)
    run = (nums(n=20) | sf.tee(stage, double) | count).start(**opts)
    assert run.result() == 38
    assert sorted(item for _, item, _ in run.results["letters"]) == [4, 11]
    assert {kind for _, _, kind in run.results["letters"]} == {"WorkerCrashed"}
