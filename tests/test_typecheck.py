"""The link check between stage annotations, pinned against mypy (SPEC 3).

Each row asks "can a value typed ``src`` be passed where ``dst`` is
declared", and expects the answer mypy gives.
"""

from __future__ import annotations

import collections
import dataclasses
import typing
from collections.abc import (
    Callable,
    Collection,
    Generator,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    MutableSequence,
    Sequence,
    Set,
    Sized,
)
from typing import Any, Generic, NewType, Optional, TypeVar, Union

import pytest
from typing_extensions import Annotated, Literal, Never, Protocol, runtime_checkable

import streamflow as sf
from streamflow._typecheck import TypeConflict, is_subtype, show, substitute

pytestmark = pytest.mark.timeout(30)

T = TypeVar("T")
K = TypeVar("K")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class Animal:
    pass


class Dog(Animal):
    pass


class Cat(Animal):
    pass


class Box(Generic[T]):
    """Invariant, as user generics are by default."""


class ReadOnlyBox(Generic[T_co]):
    pass


class Handler(Generic[T_contra]):
    pass


class IntBox(Box[int]):
    pass


class Pair(Generic[K, T]):
    pass


class Named(Pair[str, T]):
    pass


class Greeter(Protocol):
    def greet(self) -> str: ...


@runtime_checkable
class Closer(Protocol):
    def close(self) -> None: ...


class HasName(Protocol):
    name: str


class Person:
    def greet(self) -> str:
        return "hi"


class Resource:
    def close(self) -> None:
        pass


@dataclasses.dataclass
class Tag:
    name: str


class Scorer:
    def __call__(self, x: int) -> float:
        return x / 2


UserId = NewType("UserId", int)
AdminId = NewType("AdminId", UserId)


ROWS: list[tuple[Any, Any, bool]] = [
    # classes, bool/int and the numeric tower
    (bool, int, True),
    (int, bool, False),
    (Dog, Animal, True),
    (Animal, Dog, False),
    (Dog, Cat, False),
    (int, float, True),
    (int, complex, True),
    (float, complex, True),
    (bool, float, True),
    (float, int, False),
    (str, bytes, False),
    (bytes, str, False),
    (int, Hashable, True),
    (list[int], Hashable, False),
    (list[int], Sized, True),
    # None, Optional and unions on both sides
    (int, Optional[int], True),
    (int, int | None, True),
    (type(None), int | None, True),
    (None, int, False),
    (int, None, False),
    (Optional[int], int, False),
    (Optional[int], Optional[float], True),
    (int | str, int | str | None, True),
    (int | str, int, False),
    (bool | int, int, True),
    (Dog | Cat, Animal, True),
    (Animal, Dog | Cat, False),
    (Union[Dog, None], Optional[Animal], True),
    # Any, object, Never
    (int, Any, True),
    (Any, int, True),
    (Any, list[Dog], True),
    (list[Dog], object, True),
    (object, int, False),
    (type(None), object, True),
    (Never, int, True),
    (int, Never, False),
    # Annotated is stripped, on either side
    (Annotated[int, "meta"], int, True),
    (int, Annotated[float, "unit"], True),
    (Annotated[str, "meta"], Annotated[int, "meta"], False),
    # Literal
    (Literal[1], int, True),
    (Literal[True], int, True),
    (Literal["a", "b"], str, True),
    (Literal[1], str, False),
    (int, Literal[1], False),
    (Literal[1], Literal[1, 2], True),
    (Literal[1, 3], Literal[1, 2], False),
    (Literal[1], Literal[True], False),
    (Literal["a"], Literal["a"] | None, True),
    # invariant mutable containers
    (list[int], list[int], True),
    (list[bool], list[int], False),
    (list[int], list[float], False),
    (list[int], list[object], False),
    (list[Any], list[int], True),
    (list[int], list[Any], True),
    (list[int], list, True),
    (list, list[int], True),
    (dict[str, bool], dict[str, int], False),
    (dict[str, int], dict[str, int], True),
    (set[bool], set[int], False),
    (collections.deque[bool], collections.deque[int], False),
    (collections.Counter[str], dict[str, int], True),
    (list[bool], MutableSequence[int], False),
    (dict[str, bool], MutableMapping[str, int], False),
    # covariant read-only views
    (list[int], Sequence[int], True),
    (list[bool], Sequence[int], True),
    (Sequence[bool], Sequence[int], True),
    (Sequence[int], Sequence[float], True),
    (Sequence[int], list[int], False),
    (list[str], Sequence[int], False),
    (frozenset[bool], frozenset[int], True),
    (set[bool], Set[int], True),
    (list[list[int]], Sequence[Sequence[int]], True),
    (list[list[bool]], list[list[int]], False),
    (Iterator[int], Iterable[int], True),
    (Iterable[int], Iterator[int], False),
    (Generator[int, None, None], Iterator[int], True),
    (Generator[str, None, None], Iterable[int], False),
    (typing.List[int], typing.Sequence[int], True),
    (typing.Dict[str, int], dict[str, int], True),
    # mappings: invariant key, covariant value; iterating yields keys
    (dict[str, int], Mapping[str, float], True),
    (dict[str, int], Mapping[int, int], False),
    (dict[str, list[int]], Mapping[str, Sequence[int]], True),
    (Mapping[str, int], dict[str, int], False),
    (Mapping[Dog, int], Mapping[Animal, int], False),
    (dict[str, int], Mapping[str, int] | None, True),
    (dict[str, int], Iterable[str], True),
    (dict[str, int], Iterable[int], False),
    # str, bytes, range iterate as what they hold
    (str, Sequence[str], True),
    (str, Iterable[int], False),
    (bytes, Sequence[int], True),
    (range, Iterable[int], True),
    (range, Collection[str], False),
    # tuples
    (tuple[int, str], tuple[int, ...], False),
    (tuple[int, int], tuple[int, ...], True),
    (tuple[bool, bool], tuple[int, int], True),
    (tuple[int, str], tuple[int, str], True),
    (tuple[int, str], tuple[str, int], False),
    (tuple[int, str], tuple[int, str, int], False),
    (tuple[int, ...], tuple[int, int], False),
    (tuple[int, ...], Sequence[int], True),
    (tuple[int, ...], Sequence[str], False),
    (tuple[int, str], Sequence[int | str], True),
    (tuple[int, str], Sequence[int], False),
    (tuple[()], tuple[int, ...], True),
    (list[int], tuple[int, ...], False),
    # type[...]
    (type[Dog], type[Animal], True),
    (type[Animal], type[Dog], False),
    (type[Dog], type, True),
    (Dog, type[Dog], False),
    (type[Dog], type[Animal] | None, True),
    # Callable
    (Callable[[int], str], Callable[[int], str], True),
    (Callable[[int], str], Callable[[int], int], False),
    (Callable[[int], bool], Callable[[int], int], True),
    (Callable[[object], int], Callable[[int], int], True),
    (Callable[[int], int], Callable[[object], int], False),
    (Callable[[int], int], Callable[[int, int], int], False),
    (Callable[..., int], Callable[[int], int], True),
    (Callable[[int], int], Callable[..., int], True),
    (typing.Callable[[int], int], Callable[[int], float], True),
    (int, Callable[[], int], False),
    (int, Callable, False),
    (Callable[[int], int], Callable, True),
    (type, Callable[..., Any], True),
    (Scorer, Callable[..., Any], True),
    (Dog, Callable[..., Any], False),
    (type[Dog], Callable[..., Animal], True),
    (type[Animal], Callable[..., Dog], False),
    # user generic classes: invariant by default, variance when declared
    (Box[int], Box[int], True),
    (Box[bool], Box[int], False),
    (Box[int], Box[bool], False),
    (Box[int], Box, True),
    (Box, Box[int], True),
    (ReadOnlyBox[bool], ReadOnlyBox[int], True),
    (ReadOnlyBox[int], ReadOnlyBox[bool], False),
    (Handler[int], Handler[bool], True),
    (Handler[bool], Handler[int], False),
    (IntBox, Box[int], True),
    (IntBox, Box[str], False),
    (Named[int], Pair[str, int], True),
    (Named[int], Pair[str, str], False),
    (Named[int], Pair[int, int], False),
    # Protocols, structural whether runtime-checkable or not
    (Person, Greeter, True),
    (Dog, Greeter, False),
    (Resource, Closer, True),
    (Person, Closer, False),
    (Tag, HasName, True),
    (Dog, HasName, False),
    # NewType: a subtype of its base, not the reverse
    (UserId, int, True),
    (UserId, float, True),
    (int, UserId, False),
    (UserId, UserId, True),
    (AdminId, UserId, True),
    (UserId, AdminId, False),
    (list[UserId], Sequence[int], True),
]


@pytest.mark.parametrize(("src", "dst", "expected"), ROWS, ids=[f"{show(s)}->{show(d)}" for s, d, _ in ROWS])
def test_is_subtype_judges_like_mypy(src: Any, dst: Any, expected: bool) -> None:
    assert is_subtype(src, dst) is expected


# -- TypeVars -----------------------------------------------------------------

Num = TypeVar("Num", bound=float)
Pet = TypeVar("Pet", bound=Animal)
Text = TypeVar("Text", str, bytes)


class Label(str):
    pass


def test_a_typevar_binds_to_what_is_passed() -> None:
    bindings: dict[Any, Any] = {}
    assert is_subtype(int, T, bindings)
    assert bindings == {T: int}


@pytest.mark.parametrize(
    ("src", "dst", "bound"),
    [
        (list[int], list[T], int),
        (list[int], Sequence[T], int),
        (dict[str, int], Mapping[K, T], int),
        (tuple[int, int], tuple[T, ...], int),
        (tuple[bool, int], tuple[T, T], int),
        (Iterator[Dog], Iterable[T], Dog),
        (int | None, T | None, int),
        (type[Dog], type[T], Dog),
        (Callable[[int], str], Callable[[int], T], str),
        (Box[bytes], Box[T], bytes),
    ],
)
def test_a_typevar_binds_inside_generics(src: Any, dst: Any, bound: Any) -> None:
    bindings: dict[Any, Any] = {}
    assert is_subtype(src, dst, bindings)
    assert bindings[T] is bound


def test_a_typevar_keeps_an_earlier_binding_that_fits() -> None:
    bindings: dict[Any, Any] = {T: int}
    assert is_subtype(bool, T, bindings)
    assert bindings == {T: int}
    assert is_subtype(list[int], list[T], bindings)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (tuple[int, str], tuple[T, T]),
        (tuple[Dog, bytes], tuple[T, T]),
        (dict[str, int], dict[T, T]),
    ],
)
def test_conflicting_bindings_raise(src: Any, dst: Any) -> None:
    with pytest.raises(TypeConflict, match=r"~?T bound to both"):
        is_subtype(src, dst, {})


def test_a_binding_that_conflicts_with_an_earlier_one_raises() -> None:
    with pytest.raises(TypeConflict) as info:
        is_subtype(str, T, {T: int})
    assert (info.value.var, info.value.first, info.value.second) == (T, int, str)


@pytest.mark.parametrize(
    ("src", "var", "fits"),
    [
        (int, Num, True),
        (bool, Num, True),
        (str, Num, False),
        (Dog, Pet, True),
        (Animal, Pet, True),
        (int, Pet, False),
        (str, Text, True),
        (bytes, Text, True),
        (int, Text, False),
    ],
)
def test_bound_and_constrained_typevars_are_respected(src: Any, var: Any, fits: bool) -> None:
    bindings: dict[Any, Any] = {}
    assert is_subtype(src, var, bindings) is fits
    assert bindings == ({var: src} if fits else {})


def test_a_constrained_typevar_binds_to_its_constraint() -> None:
    bindings: dict[Any, Any] = {}
    assert is_subtype(Label, Text, bindings)
    assert bindings == {Text: str}


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        (list[T], list[int]),
        (T, int),
        (dict[str, T], dict[str, int]),
        (tuple[T, ...], tuple[int, ...]),
        (T | None, int | None),
        (Optional[T], Optional[int]),
        (typing.List[T], typing.List[int]),
        (Box[T], Box[int]),
        (type[T], type[int]),
        (Callable[[T], T], Callable[[int], int]),
        (typing.Callable[[T], list[T]], typing.Callable[[int], list[int]]),
        (Annotated[list[T], "meta"], Annotated[list[int], "meta"]),
        (list[K], list[K]),
        (str, str),
    ],
)
def test_substitute_replaces_bound_typevars(hint: Any, expected: Any) -> None:
    assert substitute(hint, {T: int}) == expected


# -- string annotations, through stage functions --------------------------------


@sf.stage
def dogs(n: int) -> Iterator["Dog"]:  # noqa: UP037 - a forward reference on purpose
    for _ in range(n):
        yield Dog()


@sf.stage
def feed(pets: Iterable["Animal"]) -> Iterator["list[Animal]"]:  # noqa: UP037
    for pet in pets:
        yield [pet]


@sf.stage
def only_cats(cats: Iterable["Cat"]) -> Iterator["Cat"]:  # noqa: UP037
    yield from cats


def test_string_annotations_are_resolved() -> None:
    assert dogs.output_type is Dog
    assert feed.input_type is Animal
    assert feed.output_type == list[Animal]
    assert is_subtype(dogs.output_type, feed.input_type)
    assert (dogs(n=1) | feed).stages == (dogs(n=1), feed)


def test_string_annotations_are_checked() -> None:
    with pytest.raises(sf.FlowTypeError, match="'dogs' yields Dog, 'only_cats' consumes Cat"):
        dogs(n=1) | only_cats


# -- how types are written in messages ---------------------------------------------


@pytest.mark.parametrize(
    ("hint", "text"),
    [
        (int, "int"),
        (None, "None"),
        (Any, "Any"),
        (Dog, "Dog"),
        (T, "T"),
        (UserId, "UserId"),
        (int | None, "int | None"),
        (Annotated[bytes, "raw"], "bytes"),
        (list[int], "list[int]"),
        (Mapping[str, Dog], "Mapping[str, Dog]"),  # names as written, not module paths
        (list[tuple[Dog, ...]], "list[tuple[Dog, ...]]"),
        (Callable[[int], Dog | None], "Callable[[int], Dog | None]"),
    ],
)
def test_show_writes_hints_as_source_code(hint: Any, text: str) -> None:
    assert show(hint) == text
