"""
The contracts a handler plugin is written against.

A plugin is a class that I{provides} L{IHandlerFactory} (and L{IPlugin}) and
whose instances implement L{IHandler}.  For every WebSocket connection that
negotiated the plugin's subprotocol, the service calls the class with an
L{IConnection} and an L{IHandlerContext}.  Nothing here needs Autobahn or a
reactor import.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from zope.interface import Attribute, Interface


class IRequest(Interface):
    """
    The HTTP upgrade request that opened a connection, as the handler sees it.
    """

    path = Attribute("C{str}: the request path, e.g. C{'/kitchen'}.")
    query = Attribute(
        "C{Mapping[str, Sequence[str]]}: the query string's parameters, each "
        "with every value it was given."
    )
    headers = Attribute(
        "C{Mapping[str, str]}: the request headers, keys in lower case."
    )
    peer = Attribute("C{str}: the client's address, e.g. C{'tcp4:127.0.0.1:5555'}.")
    origin = Attribute("C{str | None}: the C{Origin} header, if any.")


class IConnection(Interface):
    """
    One open WebSocket connection, as a handler may use it.  Sending on a
    closing or closed connection is silently ignored.
    """

    subprotocol = Attribute("C{str}: the subprotocol this connection speaks.")
    request = Attribute("L{IRequest}: the upgrade request.")
    id = Attribute("C{str}: a short identifier, unique within the process.")
    identity = Attribute(
        "L{wsservice.auth.identity.Identity} or C{None}: who this connection "
        "is, verified at the handshake (C{None} without C{--auth})."
    )

    def refresh(token: str) -> Deferred:
        """
        Replace this connection's identity with the one C{token} proves
        (the same user), before the old one expires and the connection is
        closed with 4100.

        @return: a L{Deferred} firing with the new identity, or failing with
            L{wsservice.auth.identity.AuthRefused}.
        """

    def sendText(text: str) -> None:
        """
        Send one text message.
        """

    def sendBinary(data: bytes) -> None:
        """
        Send one binary message.
        """

    def close(code: int = 1000, reason: str = "") -> None:
        """
        Start the closing handshake.

        @param code: 1000, or an application code from 3000 to 4999.
        @param reason: a short human-readable reason (at most 123 bytes of
            UTF-8 are sent).
        """


class IRoomMember(Interface):
    """
    Something a room delivers to: the room's side of an L{IConnection}.
    """

    def deliver(message: Any) -> None:
        """
        Send a message the hub prepared (framed once for all members) to
        this member.
        """


class IRoomHub(Interface):
    """
    Named rooms of connections: membership, presence, fan-out, per-room
    sequence numbers and bounded history.

    Room events are JSON objects.  L{publish} stamps each with C{room}, a
    per-room strictly increasing C{seq} and the server C{time}, serialises
    it once and sends the same frame to every member, publisher included.

    Presence is paged and batched, so it costs O(1) per join however big
    the room: a joiner's snapshot holds the first page of members and the
    counts, L{memberPage} gives the next pages, and L{announce}d changes
    reach the members in one C{presence} event per room per interval
    (L{wsservice.rooms.presence}).
    """

    def join(room: str, member: IRoomMember, info: Mapping[str, Any],
             resume: Any = None) -> Deferred:
        """
        Add C{member} to C{room} with its presence C{info} (for example
        C{{"id": "c7", "name": "alice"}}); with C{resume} (a
        L{wsservice.rooms.events.Resume}), also recover what a client that
        was here before missed.

        @return: a L{Deferred} that fires with a
            L{wsservice.rooms.events.RoomSnapshot}, taken before any live
            event is delivered to C{member}: C{seq}, C{history} (the past
            events, oldest first; C{frames} holds them as sent),
            C{members} (the first page of presence dicts, the joiner's
            included when it fits), C{next} (the next page's cursor, or
            C{None}), C{count} (connections), C{users} (distinct presence
            C{id}s: several connections of one user are one member),
            C{first} (whether this is its user's first connection there),
            C{epoch}, and with C{resume} C{resumed} (whether every event
            since the resume point is in C{missed}: same epoch, none fallen
            out of the log) and C{missed}.
        """

    def update(room: str, member: IRoomMember, info: Mapping[str, Any]) -> None:
        """
        Replace C{member}'s presence C{info} in C{room}.
        """

    def leave(room: str, member: IRoomMember) -> Deferred:
        """
        Remove C{member} from C{room}; a no-op if it is not a member.

        @return: a L{Deferred} firing with whether that was the last
            connection of its user (its presence C{id}) in the room.
        """

    def announce(room: str, change: str, info: Mapping[str, Any]) -> None:
        """
        Tell C{room}'s members of a presence change: C{change} is
        C{"joined"}, C{"left"} or C{"renamed"} (then C{info} has
        C{"previous"}).  The changes of one interval go out together in one
        C{presence} event, stamped like any other with C{count} and
        C{users} besides.
        """

    def memberPage(room: str, after: str | None = None) -> Deferred:
        """
        The members of C{room} after the cursor C{after} (from a snapshot
        or an earlier page; C{None} for the first page).

        @return: a L{Deferred} that fires with a
            L{wsservice.rooms.events.MemberPage} (C{members}, C{next},
            C{count}, C{users}).  A member present during the whole paging
            is listed at least once.
        """

    def publish(room: str, event: Mapping[str, Any], record: bool = False,
                idempotencyKey: str | None = None) -> Deferred:
        """
        Stamp C{event} (with C{room}, C{time}, the room's C{epoch} and the
        next C{seq}) and deliver it to every member of C{room}.  Every
        stamped event is kept in the room's recovery log.

        @param record: also keep it in the room's history (what newcomers
            are shown).
        @param idempotencyKey: publish it only if no event of this room was
            published with this key in the last five minutes.
        @return: a L{Deferred} firing with a
            L{wsservice.rooms.events.Published} (C{seq}, C{epoch}, C{time},
            C{duplicate}).
        """

    def publishBinary(room: str, data: bytes) -> None:
        """
        Deliver one binary message to every member of C{room}.
        """

    def members(room: str) -> Sequence[Mapping[str, Any]]:
        """
        The presence dicts of C{room}'s members in this process.
        """


class IHandlerContext(Interface):
    """
    What the service lends every handler: time, rooms and settings.
    """

    clock = Attribute(
        "L{twisted.internet.interfaces.IReactorTime}: schedule timers here, "
        "never on an imported reactor, so tests can use L{task.Clock}."
    )
    rooms = Attribute("L{IRoomHub}: the rooms shared by all connections.")
    settings = Attribute(
        "L{wsservice.config.HandlerSettings}: the handler-related settings "
        "from the command line (clock interval, history size, ...)."
    )
    log = Attribute("L{twisted.logger.Logger}: where a handler logs.")

    def callLater(delay: float, f: Callable[..., Any], *a: Any, **kw: Any) -> IDelayedCall:
        """
        Like C{clock.callLater}, but an exception raised by C{f} closes only
        this connection (code 4000) and is logged, as for any handler fault.
        """


class IHandler(Interface):
    """
    The per-connection object that speaks one subprotocol.

    Every method may raise: the service logs the traceback and closes only
    this connection with code 4000, reason C{"internal error"}.
    """

    def onOpen() -> None:
        """
        The connection is open: greet, join rooms, start timers.
        """

    def onMessage(payload: bytes, isBinary: bool) -> None:
        """
        One whole message.  A text message's payload is valid UTF-8.
        """

    def onClose(wasClean: bool, code: int | None, reason: str | None) -> None:
        """
        The connection is gone.  Called exactly once, and only after
        L{onOpen} was called: leave rooms and cancel timers here.
        """


class IHandlerFactory(Interface):
    """
    A subprotocol handler plugin: usually the handler class itself, declared
    with C{@provider(IPlugin, IHandlerFactory)}.

    It may also have C{maxMessagesPerSecond}: the rate its clients may send
    at unless C{--max-messages-per-second} says otherwise (no limit without
    it).  A client over it is read more slowly, and closed with 4002 if it
    stays over.
    """

    subprotocol = Attribute(
        "C{str}: the C{Sec-WebSocket-Protocol} token this handler speaks; "
        "unique among the installed plugins."
    )
    description = Attribute("C{str}: one line for C{--list-handlers}.")

    def __call__(connection: IConnection, context: IHandlerContext) -> IHandler:
        """
        Make the handler for one newly opened connection.
        """


class IAuthenticator(Interface):
    """
    Turns a handshake's token into a verified identity: a plugin point
    (C{--auth NAME} picks the L{IAuthenticatorFactory}).
    """

    def authenticate(request: IRequest, token: str | None) -> Deferred:
        """
        Check the token an upgrade request carried (C{None}: it carried
        none; C{request} no longer holds it).

        @return: a L{Deferred} firing with a
            L{wsservice.auth.identity.Identity}, or failing with
            L{wsservice.auth.identity.AuthRefused} (401, 403 or 503 and a
            reason for the client); any other failure refuses with 503.
        """

    def refresh(identity: Any, token: str) -> Deferred:
        """
        Check C{token} for a connection that is C{identity} now.

        @return: a L{Deferred} firing with the new identity (the same user),
            or failing with L{wsservice.auth.identity.AuthRefused}.
        """


class IAuthenticatorFactory(Interface):
    """
    An authenticator plugin: a class or object declared with
    C{@provider(IPlugin, IAuthenticatorFactory)}.
    """

    name = Attribute("C{str}: what C{--auth} selects it by.")
    description = Attribute("C{str}: one line for C{--help}.")

    def __call__(settings: Any, reactor: Any) -> IAuthenticator:
        """
        Make the authenticator from the C{--auth-*} options
        (L{wsservice.config.AuthSettings}); C{reactor} for its timers and
        connections.

        @raise ValueError: with what is wrong with the settings.
        """


# -- the service's own seams: what it asks of a hub beyond IRoomHub --------


class IRoomCounts(Interface):
    """
    A hub that can say how many rooms it holds (C{wsservice_rooms}).
    """

    def roomCount() -> int:
        """
        How many rooms this process holds in memory.
        """


class IRoomAdmin(Interface):
    """
    What the backend API asks of the rooms, beyond L{IRoomHub}: a view of
    every room, wherever its members are.
    """

    def roomList(prefix: str = "", after: str | None = None, limit: int = 100) -> Deferred:
        """
        Rooms whose name starts with C{prefix}, in name order after
        C{after}: fires with C{(rooms, next)}, each room a dict with
        C{room}, C{count}, C{users}, C{seq} and C{epoch}.
        """

    def roomInfo(room: str) -> Deferred:
        """
        One room's C{count}, C{users}, C{seq}, C{epoch} and first page of
        C{members} (with C{next}); C{None} if there is no such room.
        """

    def history(room: str, since: int = 0, limit: int = 100) -> Deferred:
        """
        The room's logged events after C{since}, at most C{limit}: a dict
        with C{room}, C{epoch}, C{seq} and C{events} (frames as sent);
        C{None} if there is no such room.
        """

    def control(message: Mapping[str, Any]) -> Deferred:
        """
        Send C{message} to every process (itself included), whose
        L{onControl} handler acts on it; fires with how many processes got it.
        """

    def onControl(handle: Callable[[Mapping[str, Any]], int]) -> None:
        """
        Set what acts on control messages in this process.
        """

    def nodes() -> Deferred:
        """
        The ids of the live processes sharing the broker (none without one).
        """


class IBrokerStatus(Interface):
    """
    A hub whose rooms span processes through a broker; C{/healthz} and
    C{/metrics} report its state.
    """

    node = Attribute(
        "C{str}: this process's id among the processes sharing the broker; "
        "connection ids start with it, so they are unique across them."
    )

    def brokerState() -> str:
        """
        C{"connected"} while rooms span processes, else C{"disconnected"}
        (rooms then work in this process alone).
        """

    def queuedCount() -> int:
        """
        Publishes waiting for the broker to come back.
        """
