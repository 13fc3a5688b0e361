"""``@stage``: kinds, constants, run options, identity (SPEC 1, 7)."""

from __future__ import annotations

import pickle
import typing
import warnings
from collections.abc import Generator, Iterable, Iterator
from typing import Any

import pytest

import streamflow as sf

pytestmark = pytest.mark.timeout(30)


class Animal:
    pass


class Dog(Animal):
    pass


class Car:
    pass


def _numbers(n: int, start: int = 0) -> Iterator[int]:
    yield from range(start, start + n)


numbers = sf.stage(_numbers)


@sf.stage
def double(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield 2 * x


@sf.stage
def add(xs: Iterable[int], k: int = 1) -> Iterator[int]:
    for x in xs:
        yield x + k


@sf.stage
def total(xs: Iterable[int]) -> int:
    return sum(xs)


@sf.stage
def parse(chunks: Iterable[bytes], encoding: str = "utf-8") -> Iterator[str]:
    for chunk in chunks:
        yield chunk.decode(encoding)


@sf.stage
def configured(
    xs: Iterable[int],
    count: int,
    rate: float = 1.0,
    items: list[int] | None = None,
    ids: list[int] = [],  # noqa: B006 - never mutated
    pet: Animal | None = None,
    owner: Animal = Animal(),  # noqa: B008
    label: str = "",
) -> Iterator[int]:
    yield from xs


# -- kind inference -----------------------------------------------------------------


def _typing_source() -> typing.Iterator[int]:
    yield 1


def _abc_iterable_source() -> Iterable[int]:
    return [1]


def _generator_source() -> Generator[int, None, None]:
    yield 1


def _typing_generator_source(n: int) -> typing.Generator[str, None, int]:
    yield "x"
    return n


def _typing_processor(xs: typing.Iterable[int]) -> typing.Iterator[str]:
    for x in xs:
        yield str(x)


def _iterator_processor(xs: Iterator[int]) -> Iterable[str]:
    return (str(x) for x in xs)


def _generator_processor(xs: Iterable[int]) -> Generator[float, None, None]:
    for x in xs:
        yield x / 2


def _value_sink(xs: Iterable[int]) -> int:
    return sum(xs)


def _none_sink(xs: typing.Iterator[int]) -> None:
    for _ in xs:
        pass


def _list_param_source(xs: list[int]) -> Iterator[int]:
    yield from xs  # a list is a constant, not a stream


@pytest.mark.parametrize(
    ("fn", "kind", "stage_class", "input_type", "output_type"),
    [
        (_numbers, "source", sf.Source, None, int),
        (_typing_source, "source", sf.Source, None, int),
        (_abc_iterable_source, "source", sf.Source, None, int),
        (_generator_source, "source", sf.Source, None, int),
        (_typing_generator_source, "source", sf.Source, None, str),
        (_list_param_source, "source", sf.Source, None, int),
        (_typing_processor, "processor", sf.Processor, int, str),
        (_iterator_processor, "processor", sf.Processor, int, str),
        (_generator_processor, "processor", sf.Processor, int, float),
        (_value_sink, "sink", sf.Sink, int, int),
        (_none_sink, "sink", sf.Sink, int, type(None)),
    ],
)
def test_kind_is_read_from_the_annotations(
    fn: Any, kind: str, stage_class: type, input_type: Any, output_type: Any
) -> None:
    made = sf.stage(fn)
    assert made.kind == kind
    assert type(made) is stage_class
    assert isinstance(made, sf.Stage)
    assert made.input_type is input_type
    assert made.output_type is output_type


def test_bare_stream_annotations_stream_any() -> None:
    def untyped(xs: Iterable) -> Iterator:  # type: ignore[type-arg]
        yield from xs

    made = sf.stage(untyped)
    assert made.kind == "processor"
    assert (made.input_type, made.output_type) == (Any, Any)


def test_unresolvable_annotations_raise_at_decoration() -> None:
    def lost(xs: Iterable[Missing]) -> Iterator[int]:  # type: ignore[name-defined]  # noqa: F821
        yield from ()

    with pytest.raises(sf.FlowTypeError, match=r"cannot resolve the annotations of .*lost.*Missing.*; annotate with names importable at module level"):
        sf.stage(lost)


def test_fn_is_the_undecorated_function() -> None:
    assert numbers.fn is _numbers
    assert not isinstance(double.fn, sf.Stage)
    assert list(double.fn([1, 2, 3])) == [2, 4, 6]
    assert total.fn(iter([1, 2])) == 3
    assert numbers.name == "_numbers" and double.name == "double"


def test_decorator_with_options_and_without_agree() -> None:
    plain = sf.stage(_numbers)
    tuned = sf.stage(workers=2, packets_in_flight=3, name="nums")(_numbers)
    assert (plain.kind, plain.fn) == (tuned.kind, tuned.fn)
    assert (tuned.workers, tuned.packets_in_flight, tuned.name) == (2, 3, "nums")
    assert (plain.workers, plain.packets_in_flight, plain.name) == (1, 2, "_numbers")


# -- constants ----------------------------------------------------------------------


def test_constants_bind_by_name() -> None:
    bound = parse(encoding="latin-1")
    assert bound.constants == {"encoding": "latin-1"}
    assert parse.constants == {}
    assert type(bound) is sf.Processor
    assert bound.fn is parse.fn


def test_source_constants_bind_by_position() -> None:
    assert numbers(3).constants == {"n": 3}
    assert numbers(3, 10).constants == {"n": 3, "start": 10}
    assert numbers(3, start=10) == numbers(n=3, start=10)
    assert (numbers(3, 10) | total).run(backend="inline") == 10 + 11 + 12


def test_binding_again_overrides_and_keeps_the_rest() -> None:
    bound = numbers(n=3)(start=5)(n=2)
    assert bound.constants == {"n": 2, "start": 5}


def test_too_many_positional_constants_raise() -> None:
    with pytest.raises(sf.FlowTypeError, match=r"stage '_numbers' takes 2 positional constant\(s\) \(n, start\), got 3"):
        numbers(1, 2, 3)


def test_a_constant_given_twice_raises() -> None:
    with pytest.raises(sf.FlowTypeError, match=r"constant 'n' of stage '_numbers' is given twice"):
        numbers(3, n=4)


@pytest.mark.parametrize("name", ["encodin", "chunks", "workers"])
def test_binding_an_unknown_name_raises(name: str) -> None:
    with pytest.raises(sf.FlowTypeError, match=rf"stage 'parse' has no constant '{name}'; its constants are: encoding"):
        parse(**{name: "x"})


@pytest.mark.parametrize(
    ("binding", "message"),
    [
        ({"count": "x"}, "constant count='x' of stage 'configured' is str, but it is annotated int"),
        ({"count": 1.5}, "constant count=1.5 of stage 'configured' is float, but it is annotated int"),
        ({"rate": "fast"}, "constant rate='fast' of stage 'configured' is str, but it is annotated float"),
        ({"ids": 3}, r"constant ids=3 of stage 'configured' is int, but it is annotated list\[int\]"),
        ({"owner": Car()}, "constant owner=<.*Car object.* of stage 'configured' is Car, but it is annotated Animal"),
        ({"label": b"x"}, "constant label=b'x' of stage 'configured' is bytes, but it is annotated str"),
    ],
)
def test_a_constant_of_the_wrong_simple_type_raises_at_once(binding: dict[str, Any], message: str) -> None:
    with pytest.raises(sf.FlowTypeError, match=message) as info:
        configured(**binding)
    assert "test_stage.py" in str(info.value)  # where the stage is defined


@pytest.mark.parametrize(
    "binding",
    [
        {"count": True},  # bool is an int
        {"rate": 2},  # int is a float
        {"rate": False},
        {"items": None},
        {"items": [1]},
        {"ids": [1, 2]},
        {"pet": Dog()},
        {"pet": None},
        {"owner": Dog()},  # a subclass
    ],
)
def test_a_constant_that_fits_its_annotation_binds(binding: dict[str, Any]) -> None:
    assert configured(**binding).constants == binding


def test_defaults_are_honoured() -> None:
    assert (numbers(n=3) | add | total).run(backend="inline") == 1 + 2 + 3
    assert (numbers(n=3) | add(k=10) | total).run(backend="inline") == 33
    assert (numbers(n=2, start=5) | total).run(backend="inline") == 11
    assert add.missing_constants() == []
    assert configured.missing_constants() == ["count"]


# -- run options ------------------------------------------------------------------


def test_options_returns_a_changed_copy() -> None:
    tuned = double.options(workers=3, max_message_size=1024)
    assert tuned is not double
    assert (tuned.workers, tuned.packets_in_flight, tuned.max_message_size) == (3, 6, 1024)
    assert (double.workers, double.packets_in_flight, double.max_message_size) == (1, 2, None)
    assert tuned.fn is double.fn and type(tuned) is type(double)
    again = tuned.options(packets_in_flight=4)
    assert (again.workers, again.packets_in_flight, again.max_message_size) == (3, 4, 1024)
    assert tuned.packets_in_flight == 6


def test_options_keep_bound_constants() -> None:
    tuned = add(k=5).options(workers=2)
    assert tuned.constants == {"k": 5}
    assert add(k=5).options(workers=2) == tuned


def test_options_name_renames_the_stage() -> None:
    assert double.options(name="twice").name == "twice"
    assert double.name == "double"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, r"workers=0 for stage 'parse' must be an int >= 1"),
        ({"workers": -2}, r"workers=-2 for stage 'parse' must be an int >= 1"),
        (
            {"workers": 4, "packets_in_flight": 2},
            r"^packets_in_flight=2 is below workers=4 for stage 'parse'; set packets_in_flight >= workers$",
        ),
        ({"packets_in_flight": 0}, r"packets_in_flight=0 for stage 'parse' must be an int >= 1"),
        ({"max_message_size": 0}, r"max_message_size=0 for stage 'parse' must be None or an int > 0"),
        ({"max_message_size": -1}, r"max_message_size=-1 for stage 'parse' must be None or an int > 0"),
        ({"shared_buffer": True}, r"shared_buffer=True for stage 'parse' requires max_message_size"),
    ],
)
def test_invalid_options_raise_option_error(options: dict[str, Any], message: str) -> None:
    with pytest.raises(sf.OptionError, match=message) as via_options:
        parse.options(**options)
    with pytest.raises(sf.OptionError, match=message):
        _decorate_parse(options)
    assert isinstance(via_options.value, ValueError)
    assert isinstance(via_options.value, sf.StreamflowError)


def _decorate_parse(options: dict[str, Any]) -> None:
    @sf.stage(**options)
    def parse(chunks: Iterable[bytes]) -> Iterator[str]:
        yield from ()


def test_valid_edge_options_are_accepted() -> None:
    assert parse.options(workers=4, packets_in_flight=4).packets_in_flight == 4
    shared = parse.options(max_message_size=1, shared_buffer=True)
    assert (shared.max_message_size, shared.shared_buffer) == (1, True)


def test_option_error_is_a_value_error() -> None:
    assert issubclass(sf.OptionError, ValueError)
    with pytest.raises(ValueError):
        double.options(workers=0)


# -- identity ------------------------------------------------------------------------


def test_stages_are_immutable() -> None:
    with pytest.raises(AttributeError, match="immutable"):
        double.fn = _numbers
    with pytest.raises(AttributeError):
        setattr(double, "workers", 3)
    with pytest.raises(AttributeError):
        double.anything = 1
    with pytest.raises(AttributeError):
        del double.fn
    assert double.fn is not _numbers and double.workers == 1


@pytest.mark.parametrize(
    "made",
    [
        numbers,
        numbers(3, start=1),
        double,
        double.options(workers=3, packets_in_flight=5, max_message_size=64, shared_buffer=True),
        add(k=7).options(name="plus seven"),
        total,
        sf.source(range(5)),
        sf.source([1, 2], name="pair"),
    ],
    ids=repr,
)
def test_stages_pickle_round_trip(made: sf.Stage[Any, Any, Any]) -> None:
    copy = pickle.loads(pickle.dumps(made))
    assert copy == made
    assert type(copy) is type(made)
    assert (copy.kind, copy.run_options, copy.constants, copy.name) == (
        made.kind,
        made.run_options,
        made.constants,
        made.name,
    )
    assert repr(copy) == repr(made)


def test_the_same_stage_may_appear_twice() -> None:
    flow = numbers(n=4) | double | double | total
    assert flow.stages[1] is flow.stages[2] is double
    assert flow.run(backend="inline") == 4 * (0 + 1 + 2 + 3)
    assert (numbers(n=3) | add | add(k=10)).run(backend="inline") == [11, 12, 13]


def test_stages_compare_by_function_constants_and_options() -> None:
    assert add(k=1) == add(k=1)
    assert add(k=1) != add(k=2)
    assert add != add.options(workers=2)
    assert add != double
    assert hash(add(k=1)) == hash(add(k=1))


# -- errors and exports -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "bases"),
    [
        (sf.StreamflowError, (Exception,)),
        (sf.FlowTypeError, (sf.StreamflowError, TypeError)),
        (sf.OptionError, (sf.StreamflowError, ValueError)),
        (sf.StageError, (sf.StreamflowError,)),
        (sf.WorkerCrashed, (sf.StreamflowError,)),
        (sf.InactivityError, (sf.StreamflowError, TimeoutError)),
        (sf.MessageTooLarge, (sf.StreamflowError, ValueError)),
        (sf.UnpicklableMessage, (sf.StreamflowError, TypeError)),
    ],
)
def test_error_classes_have_their_builtin_bases_and_pickle(error: type[Exception], bases: tuple[type, ...]) -> None:
    assert all(issubclass(error, base) for base in bases)
    raised = error("stage 'parse' broke")
    copy = pickle.loads(pickle.dumps(raised))
    assert type(copy) is error
    assert str(copy) == "stage 'parse' broke"


def test_stage_error_keeps_what_is_known_across_pickling() -> None:
    raised = sf.StageError("cannot pickle it", type_name="LockError", remote_traceback="Traceback ...")
    copy = pickle.loads(pickle.dumps(raised))
    assert (str(copy), copy.type_name, copy.remote_traceback) == (
        "cannot pickle it",
        "LockError",
        "Traceback ...",
    )


def test_exported_names() -> None:
    assert set(sf.__all__) == {
        "ClosedFlow",
        "Failure",
        "FailuresWarning",
        "Flow",
        "FlowTypeError",
        "InactivityError",
        "ItemTimeout",
        "MessageTooLarge",
        "OptionError",
        "Processor",
        "RemoteTraceback",
        "Run",
        "RunOptions",
        "Sink",
        "Source",
        "Stage",
        "StageError",
        "StageOptions",
        "StageStats",
        "StreamflowError",
        "TooManyFailures",
        "UnpicklableMessage",
        "UnroutedItem",
        "WorkerCrashed",
        "WorkerInfo",
        "WorkerStats",
        "batch",
        "map",
        "merge",
        "route",
        "shutdown",
        "source",
        "stage",
        "tee",
        "unbatch",
        "worker_info",
        "zip",
    }
    assert len(sf.__all__) == len(set(sf.__all__))
    for name in sf.__all__:
        assert getattr(sf, name).__module__.partition(".")[0] == "streamflow"
    public = {name for name in vars(sf) if not name.startswith("_")}
    assert public <= set(sf.__all__), "public names missing from __all__"


def test_a_source_whose_first_parameter_looks_like_a_stream_warns() -> None:
    with pytest.warns(UserWarning, match=r"stage 'doubled' has no annotation on its first parameter 'values'"):

        @sf.stage
        def doubled(values):  # type: ignore[no-untyped-def]
            for value in values:
                yield 2 * value

    assert doubled.kind == "source"
    with pytest.warns(UserWarning, match=r"first parameter 'records'"):
        sf.stage(lambda records: iter(()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")

        @sf.stage
        def numbers(n):  # type: ignore[no-untyped-def]
            yield from range(n)  # not iterated over: a constant

        @sf.stage
        def annotated(paths: list[str]) -> Iterator[str]:
            yield from paths


def test_a_misspelt_option_names_the_nearest() -> None:
    with pytest.raises(sf.OptionError, match=r"'progres' is not a run option; did you mean 'progress'\? the run options are: backend, "):
        (numbers(n=1) | total).run(progres=True)  # type: ignore[call-arg]
    with pytest.raises(sf.OptionError, match=r"'worker' is not a stage option; did you mean 'workers'\?"):
        double.options(worker=2)  # type: ignore[call-arg]
