"""How one declaration serves both clients: descriptors that bind a sans-IO builder to a client.

A method is declared once, in ``BaseClient`` (``user_info = endpoint(_api.user_info)``). Read
from a ``Client`` it is a plain function performing the builder's ``Call`` or flow; read from an
``AsyncClient`` the same function as a coroutine. The bound function carries the builder's
name, docstring and signature, so ``help()`` and editors show the real parameters; mypy sees
the exact types through the overloads of ``__get__``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar, overload

from openpan.client._protocol import Call, Flow

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S")
A = TypeVar("A")


class Pages(Protocol[T]):
    """A listing read page by page: each ``next()`` flow gives entries, ``None`` at the end."""

    def next(self) -> Flow[list[T] | None]: ...


class SyncDriver:
    """Marks what performs effects with blocking I/O (``Client`` and its task handles)."""


class AsyncDriver:
    """Marks what performs effects with ``await`` (``AsyncClient`` and its task handles)."""


def _inner(annotation: Any, wrapper: str) -> Any:
    """``"Call[UserInfo]"`` → ``"UserInfo"``: what the bound method returns."""
    text = str(annotation)
    return text[len(wrapper) + 1 : -1] if text.startswith(wrapper + "[") else annotation


class Method(Generic[P, S, A]):
    """A builder bound to a client: ``runner`` (``_send``, ``_drive`` or ``_iterate``) performs
    what the builder returns; ``bind`` passes the client (or handle) as the first argument;
    ``wrap`` turns the sync / async result into the value returned (a task handle)."""

    def __init__(
        self,
        build: Callable[..., Any],
        runner: str,
        *,
        bind: bool,
        wraps: tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any]] | None = None,
    ) -> None:
        self._build = build
        self._runner = runner
        self._bind = bind
        self._wraps = wraps
        self._name = build.__name__
        self._signatures: dict[bool, inspect.Signature] = {}
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def _signature(self, is_async: bool) -> inspect.Signature:
        if is_async not in self._signatures:
            sig = inspect.signature(self._build)
            params = list(sig.parameters.values())[1 if self._bind else 0 :]
            result = sig.return_annotation
            if self._wraps is not None:
                wrap = self._wraps[is_async]  # a handle class, or its classmethod
                result = getattr(wrap, "__self__", wrap).__name__
            elif self._runner == "_iterate":
                item = str(result).partition("[")[2]  # "Pager[Entry]" → "Iterator[Entry]"
                result = ("AsyncIterator[" if is_async else "Iterator[") + item
            else:
                result = _inner(result, "Call" if self._runner == "_send" else "Flow")
            self._signatures[is_async] = sig.replace(parameters=params, return_annotation=result)
        return self._signatures[is_async]

    @overload
    def __get__(self, obj: None, owner: type) -> Method[P, S, A]: ...
    @overload
    def __get__(self, obj: SyncDriver, owner: type | None = None) -> Callable[P, S]: ...
    @overload
    def __get__(
        self, obj: AsyncDriver, owner: type | None = None
    ) -> Callable[P, Coroutine[Any, Any, A]]: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        build, run = self._build, getattr(obj, self._runner)
        first = (obj,) if self._bind else ()
        is_async = isinstance(obj, AsyncDriver)
        wrap = None if self._wraps is None else self._wraps[is_async]
        bound: Any
        if is_async and self._runner != "_iterate":

            async def bound(*args: Any, **kwargs: Any) -> Any:
                value = await run(build(*first, *args, **kwargs))
                return value if wrap is None else wrap(obj, value)

        else:

            def bound(*args: Any, **kwargs: Any) -> Any:
                value = run(build(*first, *args, **kwargs))
                return value if wrap is None else wrap(obj, value)

        functools.update_wrapper(bound, build)
        bound.__name__ = bound.__qualname__ = self._name
        bound.__signature__ = self._signature(is_async)
        del bound.__wrapped__  # help() shows __signature__
        obj.__dict__[self._name] = bound  # the next lookup finds it without this descriptor
        return bound


def endpoint(build: Callable[P, Call[T]]) -> Method[P, T, T]:
    """One API endpoint: the method sends the ``Call`` that ``build`` makes."""
    return Method(build, "_send", bind=False)


def flow(build: Callable[Concatenate[Any, P], Flow[T]]) -> Method[P, T, T]:
    """A multi-step helper: the method drives the flow that ``build(client, …)`` makes."""
    return Method(build, "_drive", bind=True)


def task(
    build: Callable[Concatenate[Any, P], Flow[T]],
    sync: Callable[[Any, T], S],
    async_: Callable[[Any, T], A],
) -> Method[P, S, A]:
    """A helper that starts a server task: the flow's result is wrapped in the client's handle."""
    return Method(build, "_drive", bind=True, wraps=(sync, async_))


class Listing(Generic[P, T]):
    """A paged listing: ``Iterator[T]`` from a ``Client``, ``AsyncIterator[T]`` from an
    ``AsyncClient``; ``build(client, …)`` makes the pager whose pages the client drives."""

    def __init__(self, build: Callable[Concatenate[Any, P], Pages[T]]) -> None:
        self._method: Method[P, Any, Any] = Method(build, "_iterate", bind=True)
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._method.__set_name__(owner, name)

    @overload
    def __get__(self, obj: None, owner: type) -> Listing[P, T]: ...
    @overload
    def __get__(self, obj: SyncDriver, owner: type | None = None) -> Callable[P, Iterator[T]]: ...
    @overload
    def __get__(
        self, obj: AsyncDriver, owner: type | None = None
    ) -> Callable[P, AsyncIterator[T]]: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else self._method.__get__(obj, owner)


def listing(build: Callable[Concatenate[Any, P], Pages[T]]) -> Listing[P, T]:
    """A paged listing: the method iterates over the pages of ``build(client, …)``."""
    return Listing(build)
