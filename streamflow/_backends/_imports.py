"""Which modules a plan's workers need: what the warm fork server imports ahead of a run.

A stage from an importable module needs that module and what its code
imports or names.  A stage from ``__main__`` (or a closure) travels by
value, so the server cannot import it; it needs what it refers to, followed
through every function and class of ``__main__`` it names:

- the globals its code names, the cells of its closure, its defaults and
  annotations (the message classes it takes and gives);
- for a class: every method (properties, static and class methods), its
  class attributes and annotations, and its bases;
- for any other value (a constant, a global): its class, and for an
  instance of a ``__main__`` class, its attributes (for a list, tuple, set
  or dict: its first items);
- a submodule named through an attribute chain (``np.linalg.norm``), and a
  module imported inside a function body (``import sklearn`` in
  ``__init__``).

Only modules the caller has imported are listed (the server imports what is
known to import), never ``__main__``.  The walk runs at every run's start:
it looks at each object once, reads no more than ``_BUDGET`` of them, and
calls nothing of the user's (no ``__getattr__``, no properties).
"""

from __future__ import annotations

import collections
import dis
import importlib.util
import itertools
import re
import sys
import types
import typing
from collections.abc import Iterator
from typing import Any

from .._plan import Plan

__all__ = ["modules_for"]

_IMPORT_NAME = dis.opmap["IMPORT_NAME"]
_LOAD_CONST = dis.opmap["LOAD_CONST"]
_LOAD_SMALL_INT = dis.opmap.get("LOAD_SMALL_INT", -1)  # Python 3.14 loads an import's level with it
_EXTENDED_ARG = dis.EXTENDED_ARG
_BUDGET = 10_000  # objects looked at a run, at most: a huge constant graph must not slow every start
_ITEMS = 100  # of a list, tuple, set or dict: a million numbers are one type of number
_CONTAINERS = (list, tuple, set, frozenset, dict)
_WORD = re.compile(r"[A-Za-z_]\w*")
_NOT_IMPORTED = ("__main__", "__mp_main__", "builtins")


def modules_for(plan: Plan) -> list[str]:
    """The modules the plan's stages come from and use, in the order found.

    Never ``__main__``; only modules in the caller's ``sys.modules``.
    """
    walk = _Walk()
    for node in plan.nodes:
        walk.stage(node.function)
        for value in node.constants.values():
            walk.value(value)
    walk.finish()
    return [name for name in walk.found if name not in _NOT_IMPORTED and name in sys.modules]


class _Walk:
    """One run's look at its stages: what it found, and what it has looked at."""

    def __init__(self) -> None:
        self.found: dict[str, None] = {}
        self._seen: dict[int, Any] = {}  # by id, and kept: an id is not reused while the walk runs
        self._left = _BUDGET
        self._tried: dict[str, set[str]] = {}  # module -> names tried as its submodules
        # Breadth first, not recursive: a long chain of objects must not overflow the
        # stack, and what a stage names directly is looked at before the budget runs out.
        self._pending: collections.deque[Any] = collections.deque()

    def _first(self, obj: Any) -> bool:
        if id(obj) in self._seen or self._left <= 0:
            return False
        self._seen[id(obj)] = obj
        self._left -= 1
        return True

    def stage(self, fn: Any) -> None:
        """Note a stage's function or class, and look inside it wherever it is from
        (a module's function may import in its body)."""
        if isinstance(fn, (type, types.FunctionType)) and self._first(fn):
            self._module(fn)
            self.inside(fn)
        else:
            self.value(fn)

    def value(self, value: Any) -> None:
        """Note the module ``value`` comes from (once ``finish`` runs); look inside it if it travels by value."""
        self._pending.append(value)

    def finish(self) -> None:
        """Look at every value noted, and at what they refer to, within the budget."""
        while self._pending and self._left > 0:
            self._look(self._pending.popleft())

    def _look(self, value: Any) -> None:
        if not self._first(value):
            return
        kind = type(value)  # not isinstance: a proxy's __class__ is the user's code
        if issubclass(kind, types.ModuleType):
            self.found[value.__name__] = None
        elif issubclass(kind, (type, types.FunctionType)):
            self._module(value)
            if _by_value(value):
                self.inside(value)
        elif kind is types.MethodType:
            self.value(value.__func__)
            self.value(value.__self__)
        elif kind is types.BuiltinFunctionType:
            self._module(value)
        elif kind in _CONTAINERS:  # a table of classes, of models, ...: its first items
            items = itertools.chain.from_iterable(value.items()) if kind is dict else value
            self._pending.extend(itertools.islice(items, _ITEMS))
        else:
            self.value(kind)
            if _by_value(kind):
                for attribute in _instance_dict(value).values():
                    self.value(attribute)

    def inside(self, obj: Any) -> None:
        """Look at what a function's or a class's own code refers to."""
        if isinstance(obj, type):
            self._class(obj)
        elif isinstance(obj, types.FunctionType):
            self._function(obj)

    def _module(self, obj: type | types.FunctionType | types.BuiltinFunctionType) -> None:
        name = obj.__module__
        if isinstance(name, str):
            self.found[name] = None

    def _class(self, cls: type) -> None:
        for base in cls.__mro__[1:]:
            self.value(base)
        namespace = _namespace_of(cls)
        for name, attribute in vars(cls).items():
            if isinstance(attribute, (staticmethod, classmethod)):
                attribute = attribute.__func__
            if isinstance(attribute, property):
                for accessor in (attribute.fget, attribute.fset, attribute.fdel):
                    if isinstance(accessor, types.FunctionType) and self._first(accessor):
                        self._function(accessor)
            elif isinstance(attribute, types.FunctionType):
                if self._first(attribute):
                    self._function(attribute)  # a method of a walked class is walked, wherever the class is from
            elif name == "__annotations__" and isinstance(attribute, dict):
                for hint in attribute.values():
                    self._annotation(hint, namespace)
            elif not name.startswith("__"):
                self.value(attribute)

    def _function(self, fn: types.FunctionType) -> None:
        namespace = fn.__globals__
        names: set[str] = set()
        imported: list[tuple[str, int]] = []
        for code in _codes(fn.__code__):
            names.update(code.co_names)
            imported.extend(_imports(code))
        modules: list[str] = []
        referred = [namespace[name] for name in names if name in namespace]
        for cell in fn.__closure__ or ():
            try:
                referred.append(cell.cell_contents)
            except ValueError:  # a cell not yet filled
                continue
        referred.extend(fn.__defaults__ or ())
        referred.extend((fn.__kwdefaults__ or {}).values())
        for value in referred:
            self.value(value)
            if isinstance(value, types.ModuleType):
                modules.append(value.__name__)
        for name, level in imported:
            absolute = _absolute(name, level, namespace)
            if absolute in sys.modules:  # imported by the caller: known to import
                self.found[absolute] = None
                modules.append(absolute)
        try:
            hints = dict(fn.__annotations__)
        except Exception:  # noqa: BLE001 - lazily evaluated annotations may name what does not exist
            hints = {}
        for hint in hints.values():
            self._annotation(hint, namespace)
        self._submodules(modules, names)

    def _annotation(self, hint: Any, namespace: dict[str, Any]) -> None:
        if isinstance(hint, str):  # ``from __future__ import annotations``: the names it mentions
            for word in _WORD.findall(hint):
                if word in namespace:
                    self.value(namespace[word])
            return
        self.value(typing.get_origin(hint) or hint)
        for argument in typing.get_args(hint):
            self._annotation(argument, namespace)

    def _submodules(self, modules: list[str], names: set[str]) -> None:
        """``numpy.linalg`` for ``np.linalg.norm``: the loaded submodules a chain of names reaches."""
        while modules:
            module = modules.pop()
            tried = self._tried.setdefault(module, set())
            for name in names - tried:  # methods of one class share most names: each pair once
                submodule = f"{module}.{name}"
                if submodule in sys.modules:  # already found or not, these names may reach further
                    self.found[submodule] = None
                    modules.append(submodule)
            tried |= names


def _by_value(obj: type | types.FunctionType) -> bool:
    """Whether cloudpickle sends ``obj`` by value: the server cannot import it, only what it uses."""
    return obj.__module__ == "__main__" or "<locals>" in obj.__qualname__


def _instance_dict(value: Any) -> dict[str, Any]:
    try:
        attributes = object.__getattribute__(value, "__dict__")  # past any __getattr__ of the user's
    except AttributeError:
        return {}
    return attributes if isinstance(attributes, dict) else {}


def _namespace_of(cls: type) -> dict[str, Any]:
    module = sys.modules.get(cls.__module__)
    return vars(module) if module is not None else {}


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """``code`` and the code nested in it (comprehensions, inner functions and classes)."""
    stack = [code]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(const for const in current.co_consts if isinstance(const, types.CodeType))


def _imports(code: types.CodeType) -> Iterator[tuple[str, int]]:
    """(module, level) of each ``import`` statement in ``code``'s own body; level -1: not known.

    Read off the bytecode (``dis`` costs a hundred times more): ``LOAD_CONST
    level; LOAD_CONST fromlist; IMPORT_NAME module``, each instruction two
    bytes after its ``EXTENDED_ARG`` prefixes.
    """
    raw = code.co_code
    opcodes = raw[::2]
    at = opcodes.find(_IMPORT_NAME)
    while at >= 0:
        try:
            _, name, start = _instruction(raw, 2 * at)
            _, _, start = _instruction(raw, start - 2)  # the fromlist
            opcode, argument, _ = _instruction(raw, start - 2)
            level = code.co_consts[argument] if opcode == _LOAD_CONST else argument if opcode == _LOAD_SMALL_INT else -1
            module = code.co_names[name]
        except IndexError:  # a shape of bytecode not foreseen: that import is let go
            pass
        else:
            yield module, level if type(level) is int else -1
        at = opcodes.find(_IMPORT_NAME, at + 1)


def _instruction(raw: bytes, offset: int) -> tuple[int, int, int]:
    """(opcode, argument) of the instruction at ``offset``, and where its prefixes start."""
    if offset < 0:
        raise IndexError(offset)
    opcode, argument, shift = raw[offset], raw[offset + 1], 8
    while offset >= 2 and raw[offset - 2] == _EXTENDED_ARG:
        offset -= 2
        argument |= raw[offset + 1] << shift
        shift += 8
    return opcode, argument, offset


def _absolute(name: str, level: int, namespace: dict[str, Any]) -> str | None:
    if level == 0:
        return name
    package = namespace.get("__package__")
    if level < 0 or not isinstance(package, str) or not package:
        return None
    try:
        return importlib.util.resolve_name("." * level + name, package)
    except (ImportError, ValueError):
        return None
