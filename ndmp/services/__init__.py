"""The NDMP services: each module answers the messages of one interface
(CONNECT, CONFIG, TAPE, MOVER, SCSI, DATA) for a session.

A service is a :class:`Service` whose answering methods are marked with
:func:`answers`; :meth:`Service.handlers` maps each message code to its
bound method, a coroutine taking the decoded request and returning the
reply body (or raising an :class:`~ndmp.errors.NdmpError`).  A request
that only passes its fields on to a method of the session's mover or data
service is a row of :attr:`Service.FORWARDS` instead.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar, TypeVar

from ..messages import ErrorReply
from ..protocol import Error

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

    #: The session's attribute holding the object the :attr:`FORWARDS` go to.
    TARGET: ClassVar[str | None] = None
    #: Requests passed on to the target: message code -> (its method, the
    #: request's fields it takes, in order).  The method may be a coroutine;
    #: the reply is what it returns, ``ErrorReply(NO_ERR)`` when that is
    #: ``None``, or the error it raises.
    FORWARDS: ClassVar[dict[int, tuple[str, ...]]] = {}

    def __init__(self, session: "Session") -> None:
        self.session = session
        self.target = getattr(session, self.TARGET) if self.TARGET else None

    def handlers(self) -> dict[int, Handler]:
        """The marked methods, bound, and the forwards, by the message codes they answer."""
        table: dict[int, Handler] = {}
        for code, (method, *fields) in self.FORWARDS.items():
            table[int(code)] = self._forward(getattr(self.target, method), fields)
        for cls in reversed(type(self).__mro__):
            for name, member in vars(cls).items():
                for code in getattr(member, "ndmp_answers", ()):
                    table[int(code)] = getattr(self, name)
        return table

    @staticmethod
    def _forward(method: Callable[..., Any], fields: list[str]) -> Handler:
        async def forward(request: Any) -> Any:
            reply = method(*(getattr(request, f) for f in fields))
            if inspect.isawaitable(reply):
                reply = await reply
            return ErrorReply(Error.NO_ERR) if reply is None else reply
        return forward
