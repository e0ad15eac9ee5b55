"""The NDMP services: each module answers the messages of one interface
(CONNECT, CONFIG, TAPE, MOVER, SCSI, DATA) for a session.

A service is a :class:`Service` whose answering methods are marked with
:func:`answers`; :meth:`Service.handlers` maps each message code to its
bound method, a coroutine taking the decoded request and returning the
reply body (or raising an :class:`~ndmp.errors.NdmpError`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

if TYPE_CHECKING:
    from ..protocol import Message
    from ..session import Session

Handler = Callable[[Any], Awaitable[Any]]
_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


def answers(*codes: "Message") -> Callable[[_F], _F]:
    """Mark a service method as the handler of the requests ``codes``."""
    def mark(method: _F) -> _F:
        method.ndmp_answers = codes  # type: ignore[attr-defined]
        return method
    return mark


class Service:
    """One session's answers to the requests of one interface."""

    def __init__(self, session: "Session") -> None:
        self.session = session

    def handlers(self) -> dict[int, Handler]:
        """The marked methods, bound, by the message codes they answer."""
        table: dict[int, Handler] = {}
        for cls in reversed(type(self).__mro__):
            for name, member in vars(cls).items():
                for code in getattr(member, "ndmp_answers", ()):
                    table[int(code)] = getattr(self, name)
        return table
