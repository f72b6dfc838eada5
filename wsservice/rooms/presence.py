"""
Presence that scales: a room's joins, leaves and renames are gathered over
a short interval and announced in one C{presence} event, so a storm of N
joins costs O(members) frames per interval instead of O(members) per join.

The event, as members receive it (the hub adds C{count}, C{users},
C{room}, C{seq} and C{time})::

    {"type": "presence", "name": "", "message": "alice, bob and 12 others joined",
     "joined": [{"id": "c8", "name": "alice"}, ...], "joinedCount": 14,
     "left": [], "leftCount": 0, "renamed": [], "renamedCount": 0}

Each list holds at most C{listLimit} entries (the counts say how many
there were); in a room above C{crowdLimit} members the lists are empty and
only the counts are sent.

A client keeping a member list applies an event's C{joined} (insert or
replace, by C{id}), then C{renamed}, then C{left}.  A member who joined and
left within one interval is in both lists: someone may have seen it in a
snapshot in between; one who left and came back is in C{joined} only.  A
rename right after a join shows as the join under the new name.
"""

from __future__ import annotations

from typing import Any, Mapping

#: The kinds of change L{PresenceChanges.add} takes.
KINDS = ("joined", "left", "renamed")

#: Frames per second a room's presence events may cost its members: one
#: event per interval to every member of a very big room would be most of
#: the work of a join storm (a quarter of the CPU of 10,000 clients joining
#: one room, measured by bench scenario 7, where a frame to a member costs
#: about 20 us of system time), so such rooms announce less often
#: (L{presenceDelay}): at this rate, a tenth of a core at most.
PRESENCE_FRAMES_PER_SECOND = 5_000


def presenceDelay(interval: float, members: int) -> float:
    """
    Seconds to gather a room of C{members}' presence changes: C{interval},
    or longer where announcing every C{interval} would cost more than
    L{PRESENCE_FRAMES_PER_SECOND} (a room above 1,250 members at 0.25 s;
    a room of 10,000 announces every 2 s).
    """
    return max(interval, members / PRESENCE_FRAMES_PER_SECOND)


class PresenceChanges:
    """
    The presence changes of one room since its last presence event, keyed
    by member id so later changes of a member replace earlier ones.
    """

    __slots__ = ("joined", "left", "renamed", "timer")

    def __init__(self) -> None:
        self.joined: dict[Any, dict[str, Any]] = {}
        self.left: dict[Any, dict[str, Any]] = {}
        self.renamed: dict[Any, dict[str, Any]] = {}
        self.timer: Any = None

    def __bool__(self) -> bool:
        return bool(self.joined or self.left or self.renamed)

    def add(self, kind: str, info: Mapping[str, Any]) -> None:
        """
        Record one change: C{kind} is C{"joined"}, C{"left"} or
        C{"renamed"}; C{info} the member's presence (a rename's with
        C{"previous"}).
        """
        key = info.get("id", id(info))
        entry = dict(info)
        if kind == "joined":
            # Back within the interval: present at its end, so not "left"
            # (a client applies joined before left).
            self.left.pop(key, None)
            self.joined[key] = entry
        elif kind == "left":
            self.renamed.pop(key, None)
            self.left[key] = entry
        elif kind == "renamed":
            if key in self.joined:
                entry.pop("previous", None)
                self.joined[key] = entry
            else:
                earlier = self.renamed.get(key)
                if earlier is not None and "previous" in earlier:
                    entry["previous"] = earlier["previous"]
                self.renamed[key] = entry
        else:
            raise ValueError(f"unknown presence change {kind!r}; one of {', '.join(KINDS)}")

    def event(self, listLimit: int, crowded: bool) -> dict[str, Any]:
        """
        The presence event for these changes, without the room's counts.
        """
        joined, left, renamed = (list(d.values()) for d in (self.joined, self.left, self.renamed))
        shown = 0 if crowded else listLimit
        return {
            "type": "presence",
            "name": "",
            "message": describe(joined, left, renamed, crowded),
            "joined": joined[:shown],
            "joinedCount": len(joined),
            "left": left[:shown],
            "leftCount": len(left),
            "renamed": renamed[:shown],
            "renamedCount": len(renamed),
        }


def _name(info: Mapping[str, Any]) -> str:
    return str(info.get("name") or info.get("id") or "someone")


def _some(infos: list[dict[str, Any]], verb: str) -> str:
    names = [_name(i) for i in infos[:3]]
    others = len(infos) - len(names)
    if others == 1 and len(infos) == 4:
        names, others = [_name(i) for i in infos], 0
    if others:
        return f"{', '.join(names)} and {others} others {verb}"
    if len(names) == 1:
        return f"{names[0]} {verb}"
    return f"{', '.join(names[:-1])} and {names[-1]} {verb}"


def describe(joined: list[dict[str, Any]], left: list[dict[str, Any]],
             renamed: list[dict[str, Any]], crowded: bool = False) -> str:
    """
    One line for people: C{"alice, bob and 12 others joined; carol left"},
    or only the numbers in a crowded room.
    """
    if crowded:
        parts = [f"{len(infos)} {verb}" for infos, verb in
                 ((joined, "joined"), (left, "left"), (renamed, "renamed")) if infos]
        return ", ".join(parts)
    parts = []
    if joined:
        parts.append(_some(joined, "joined"))
    if left:
        parts.append(_some(left, "left"))
    if len(renamed) == 1:
        r = renamed[0]
        parts.append(f"{r.get('previous', '?')} is now {_name(r)}")
    elif renamed:
        parts.append(_some(renamed, "renamed"))
    return "; ".join(parts)
