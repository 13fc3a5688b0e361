"""Composition checks: what each part of a chain yields, given what flows into it.

A chain is a tuple of parts: stages, and branch blocks (``_blocks.Block``)
whose branches are chains themselves.  ``check(parts)`` checks every link
in order and returns what each part yields (TypeVars bound along the way);
a block is checked branch by branch against what enters it, and yields the
union of its open branches' items (a tuple of them for ``zip``), or, when
every branch ends in a sink, is itself a sink whose result is the tuple (a
dict by key for ``route``) of theirs.  Every error is a ``FlowTypeError``
naming both ends, their types and where they were defined.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, Protocol, Union

from ._blocks import Block
from ._errors import FlowTypeError
from ._failures import Failure
from ._signature import Kind, Signature
from ._typecheck import TypeConflict, is_subtype, show, show_apart, substitute

__all__ = ["Part", "StagePart", "check", "kind_of", "stages_in"]


class StagePart(Protocol):
    """What composition reads of a stage (``_stage.Stage``)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def where(self) -> str: ...
    @property
    def signature(self) -> Signature: ...
    @property
    def input_type(self) -> Any: ...
    @property
    def output_type(self) -> Any: ...
    @property
    def dead_letters(self) -> Any: ...

    def check_complete(self) -> None: ...


Part = Union[StagePart, Block]


def kind_of(part: Any) -> Kind:
    """A part's kind: a block that starts a chain is a source; one whose branches all end in a sink, a sink."""
    if not isinstance(part, Block):
        kind: Kind = part.kind
        return kind
    if part.kind == "merge":
        return "source"
    if part.kind != "zip" and all(kind_of(branch[-1]) == "sink" for branch in part.branches):
        return "sink"
    return "processor"


def _where(part: Any) -> str:
    if not isinstance(part, Block):
        where: str = part.where
        return where
    return f"a block of {len(part.branches)} branches, the first starting with '{part.branches[0][0].name}'"


def stages_in(parts: Sequence[Any]) -> tuple[Any, ...]:
    """Every stage of a chain, depth first (a block's branches in order)."""
    found: list[Any] = []
    for part in parts:
        if not isinstance(part, Block):
            found.append(part)
        else:
            for branch in part.branches:
                found.extend(stages_in(branch))
    return tuple(found)


def check(parts: Sequence[Part]) -> tuple[Any, ...]:
    """Check every link of the chain ``parts``; what each part yields (or a sink returns)."""
    first = parts[0]
    if not isinstance(first, Block):
        if first.kind != "source" and not first.signature.input_annotated:
            raise FlowTypeError(f"stage '{first.name}' has no stream annotation ({first.where})")
        types = [first.output_type]
    else:
        types = [_block_type(first, None, None)]
    for up, down in zip(parts, parts[1:]):
        types.append(_link(up, types[-1], down))
    last = parts[-1]
    if not isinstance(last, Block) and last.kind != "sink" and not last.signature.output_annotated:
        raise FlowTypeError(
            f"stage '{last.name}' has no return annotation ({last.where}); annotate it, e.g. '-> Iterator[X]'"
        )
    for stage in stages_in(parts):  # after the links: a missing stream annotation says more
        stage.check_complete()
        _check_dead_letters(stage)
    return tuple(types)


def _link(up: Any, up_type: Any, down: Part) -> Any:
    """Check ``up -> down``; return what ``down`` yields given ``up_type``."""
    head = f"cannot connect '{up.name}' -> '{down.name}'"
    if kind_of(up) == "sink":
        raise FlowTypeError(f"{head}: '{up.name}' is a sink ({_where(up)}); nothing can follow it")
    if isinstance(down, Block):
        if down.kind == "merge":
            raise FlowTypeError(f"{head}: sf.merge starts a chain (its flows begin with sources); nothing flows into it")
        return _block_type(down, up, up_type)
    if down.kind == "source":
        first = down.signature.constants[:1]
        hint = ""
        if first and first[0].name not in down.signature.hints:
            # Most likely a processor whose stream parameter lacks its annotation.
            name = first[0].name
            hint = f"; if '{name}' is its input stream, annotate it, e.g. '{name}: Iterable[X]'"
        raise FlowTypeError(f"{head}: '{down.name}' is a source ({down.where}); it takes no input stream{hint}")
    signature = getattr(up, "signature", None)  # a block's, and the failures', are known
    if signature is not None and not signature.output_annotated:
        raise FlowTypeError(f"{head}: '{up.name}' has no return annotation ({up.where}); annotate it, e.g. '-> Iterator[X]'")
    bindings: dict[Any, Any] = {}
    try:
        fits = is_subtype(up_type, down.input_type, bindings)
    except TypeConflict as conflict:
        raise FlowTypeError(
            f"{head}: '{up.name}' yields {show(up_type)}, which binds {conflict} in '{down.name}' ({down.where})"
        ) from None
    if not fits:
        yields, consumes = show_apart(up_type, down.input_type)
        raise FlowTypeError(
            f"{head}: '{up.name}' yields {yields}, '{down.name}' consumes "
            f"{consumes} ('{up.name}' {_where(up)}; '{down.name}' {down.where})"
        )
    return substitute(down.output_type, bindings)


def _block_type(block: Block, up: Any, up_type: Any) -> Any:
    """Check each branch of ``block`` against ``up`` (None: checked when the block is fed); what it yields."""
    outputs: list[Any] = []
    closed: list[Any] = []
    for number, branch in enumerate(block.branches, 1):
        first = branch[0]
        label = f"branch {number} of {block.name}"
        if block.kind == "merge":
            if kind_of(first) != "source":
                raise FlowTypeError(f"{label} starts with '{first.name}', which needs an input: a merged flow starts with a source")
            types = check(branch)
        else:
            if kind_of(first) == "source":
                raise FlowTypeError(
                    f"{label} starts with source '{first.name}' ({_where(first)}): a branch takes the "
                    "stream that enters the block; to join sources, use sf.merge(...)"
                )
            if block.kind == "zip":
                _check_zip_branch(label, branch)
            types = check(branch) if up is None else _fed(branch, up, up_type)
        (closed if kind_of(branch[-1]) == "sink" else outputs).append(types[-1])
    if block.kind == "zip":
        return tuple[tuple(outputs)]  # type: ignore[misc]
    if outputs:
        return _union(outputs)
    if block.kind == "route":
        return dict[Any, _union(closed)]  # type: ignore[misc]
    return tuple[tuple(closed)]  # type: ignore[misc]


def _fed(branch: tuple[Part, ...], up: Any, up_type: Any) -> tuple[Any, ...]:
    """Check ``branch`` as fed by ``up``, yielding ``up_type``; what each of its parts yields."""
    types = [_link(up, up_type, branch[0])]
    for before, after in zip(branch, branch[1:]):
        types.append(_link(before, types[-1], after))
    for stage in stages_in(branch):
        stage.check_complete()
    return tuple(types)


def _check_zip_branch(label: str, branch: tuple[Part, ...]) -> None:
    for part in branch:
        if not (not isinstance(part, Block) and part.kind == "processor" and part.signature.per_item):
            what = f"'{part.name}'" + ("" if not isinstance(part, Block) else " (a block)")
            raise FlowTypeError(
                f"{label} holds {what}, which is not a map stage: each branch of sf.zip must give "
                "exactly one output per input, so it is a chain of @sf.map stages"
            )


def _check_dead_letters(stage: StagePart) -> None:
    """A stage whose ``on_error`` is a branch: the branch takes ``Failure`` records and ends in a sink."""
    branch = stage.dead_letters
    if branch is None:
        return
    parts: tuple[Part, ...] = tuple(getattr(branch, "parts", (branch,)))
    label = f"the dead-letter branch of '{stage.name}'"
    if kind_of(parts[0]) == "source":
        raise FlowTypeError(f"{label} starts with source '{parts[0].name}': it takes the failed items")
    if kind_of(parts[-1]) != "sink":
        raise FlowTypeError(
            f"{label} ends in '{parts[-1].name}', not a sink: failed items end there (a table, a file), "
            "and its result is in Run.results"
        )
    _fed(parts, _FailureSource(stage.name), Failure)


class _FailureSource:
    """What feeds a dead-letter branch, for messages: the failed items of a stage."""

    kind: Kind = "processor"

    def __init__(self, stage: str) -> None:
        self.name = f"failures of {stage}"
        self.where = f"the items '{stage}' failed on, as Failure records"


def _union(types: Sequence[Any]) -> Any:
    unique = list(dict.fromkeys(types))
    return unique[0] if len(unique) == 1 else typing.Union[tuple(unique)]
