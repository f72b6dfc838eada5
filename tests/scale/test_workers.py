"""
End-to-end tests of C{twistd wsservice --workers N}: one command, N worker
processes on one port, supervised, sharing rooms through a real Redis.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from typing import Callable, Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.processes import REPO, TWISTD, ServiceProcess
from tests.support.wsclient import closeCode, open_, recvJSON, recvUntil

pytestmark = [pytest.mark.redis, pytest.mark.slow]

#: The fixture's broker heartbeat, and the default presence interval.
HEARTBEAT, PRESENCE_INTERVAL = 0.5, 0.25
#: README, "Presence expiry": a dead node's members are announced as left
#: within four heartbeats plus the presence interval.  That is the
#: mechanism's own worst case (an expiry three heartbeats after its last
#: beat, found by the next reaping beat, announced one interval later), with
#: no margin for a reactor that runs late on an overloaded machine.
NODE_LOST_WITHIN = 4 * HEARTBEAT + PRESENCE_INTERVAL
#: The most messages one steady sender sends (it stops sooner when told).
SEND_LIMIT = 3000


@contextmanager
def twoWorkers(redisServer, *args: str) -> Iterator[ServiceProcess]:
    """
    C{--workers 2 --broker ...} (and C{args}), started through the real
    twistd command, with both workers listening and connected to Redis;
    the supervisor and its workers are killed afterwards.  Connections are
    logged: their open lines say which worker took each (L{servedBy}).
    """
    service = ServiceProcess.onLoopback(
        "--workers", "2", "--log-connections",
        "--broker", f"{redisServer.url}?heartbeat={HEARTBEAT}", *args,
    )
    service.start(timeout=30)
    try:
        for index in (0, 1):
            service.waitForLog(rf"\[worker {index} pid \d+\] .*wsservice ready", timeout=15)
            service.waitForLog(rf"\[worker {index} pid \d+\] .*connected to Redis", timeout=15)
        yield service
    finally:
        service.stop(signal.SIGKILL)
        for pid in workerPIDs(service).values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def workers(redisServer):
    """
    L{twoWorkers} with the default options (and the connection lines).
    """
    with twoWorkers(redisServer) as service:
        yield service


def workerPIDs(service) -> dict[int, int]:
    """
    The latest pid the supervisor logged for each worker index.
    """
    pids: dict[int, int] = {}
    for line in service.lines:
        match = re.search(r"started worker (\d+) as pid (\d+)", line)
        if match:
            pids[int(match.group(1))] = int(match.group(2))
    return pids


def servedBy(service, ws) -> int:
    """
    Which worker index accepted the connection C{ws}.
    """
    port = ws.socket.getsockname()[1]
    line = service.waitForLog(rf"open tcp4:127\.0\.0\.1:{port} ")
    return int(re.search(r"\[worker (\d+) ", line).group(1))


def oneOnEach(service, room: str) -> dict[int, object]:
    """
    Chat connections to C{room}, one served by each worker (connections the
    kernel gives to a worker already covered are closed).  Bounded.
    """
    chosen: dict[int, object] = {}
    for attempt in range(50):
        ws = open_(service.url(f"/{room}?name=p{attempt}"), "chat")
        recvUntil(ws, "welcome")
        index = servedBy(service, ws)
        if index in chosen:
            ws.close()
        else:
            chosen[index] = ws
        if len(chosen) == 2:
            return chosen
    raise AssertionError("the kernel never handed a connection to both workers")


def test_workers_without_broker_is_a_usage_error_that_says_why():
    """
    --workers 2 without --broker fails at once, explaining that rooms would
    not be shared.
    """
    result = subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "wsservice", "--port", "0", "--workers", "2"],
        capture_output=True, text=True, timeout=60, cwd=str(REPO),
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "--workers needs --broker" in output
    assert "would not see each other" in output


def test_two_workers_share_the_port_and_the_rooms(workers):
    """
    Both workers accept connections on the one port, and people in the same
    room on different workers hear each other in one order.
    """
    assert workers.ports[0] == workers.ports[1]
    chosen = oneOnEach(workers, "shared")
    first, second = chosen[0], chosen[1]
    first.send(json.dumps({"message": "from worker 0"}))
    second.send(json.dumps({"message": "from worker 1"}))
    got = [[recvUntil(ws, "message") for _ in range(2)] for ws in (first, second)]
    assert [(m["seq"], m["message"]) for m in got[0]] == [(m["seq"], m["message"]) for m in got[1]]
    for ws in (first, second):
        ws.close()


def test_a_killed_worker_is_restarted_and_logged(workers):
    """
    A worker killed with SIGKILL is logged and replaced; the port keeps
    serving throughout, and the new worker joins the rooms.
    """
    chosen = oneOnEach(workers, "phoenix")
    victim = workerPIDs(workers)[0]
    os.kill(victim, signal.SIGKILL)
    workers.waitForLog(r"worker 0 died .*restarting it")
    assert closeCode(chosen[0])[0] in (None, 1006)
    # The survivor still serves while the replacement starts.
    with open_(workers.url("/phoenix?name=during"), "chat") as ws:
        assert recvJSON(ws)["type"] == "welcome"
    workers.waitFor(lambda: workerPIDs(workers)[0] != victim, 10)
    assert workerPIDs(workers)[0] != victim
    newPID = workerPIDs(workers)[0]
    workers.waitForLog(rf"\[worker 0 pid {newPID}\] .*connected to Redis", timeout=15)
    again = oneOnEach(workers, "phoenix")
    again[0].send(json.dumps({"message": "back"}))
    assert recvUntil(chosen[1], "message")["message"] == "back"
    for ws in (*again.values(), chosen[1]):
        ws.close()


def test_sigterm_reaches_every_worker_and_each_closes_with_1001(workers):
    """
    SIGTERM to the one twistd process closes every client on every worker
    with 1001, and the whole service exits 0.
    """
    chosen = oneOnEach(workers, "bye")
    assert workers.stop(signal.SIGTERM) == 0
    for ws in chosen.values():
        assert closeCode(ws)[0] == 1001
    for index in (0, 1):
        workers.waitForLog(rf"worker {index} exited: .*exit code 0")


def test_workers_shut_down_gracefully_when_their_supervisor_is_killed(workers):
    """
    If the supervising process dies without a chance to stop them, every
    worker notices its closed stdin pipe and closes its clients with 1001
    instead of lingering.
    """
    chosen = oneOnEach(workers, "orphans")
    workers.stop(signal.SIGKILL)
    for ws in chosen.values():
        assert closeCode(ws)[0] == 1001



class Member:
    """
    A chat member whose frames a thread reads as they arrive (with the time
    each arrived), so nothing waits unread while the test does other things.
    A sender, once started, says its next numbered message each time the
    previous one comes back: one in flight, as fast as the service lets it
    (past chat's burst, its rate limit of 100 a second), L{SEND_LIMIT} at most.
    """

    def __init__(self, ws, welcome: dict, worker: int) -> None:
        self.ws = ws
        self.welcome = welcome
        self.id = welcome["id"]
        self.worker = worker
        self.events: list[tuple[float, dict]] = []
        self.closed: int | None = None  # the close code; 1006: no close frame
        self.sent = 0
        self.echoed = 0
        self._sending = False
        self._stopping = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                frame = self.ws.recv()
                if isinstance(frame, bytes):
                    continue
                event, now, say = json.loads(frame), time.monotonic(), None
                with self._changed:
                    self.events.append((now, event))
                    if event.get("type") == "message" and event.get("id") == self.id:
                        self.echoed += 1
                        if self._sending and not self._stopping and self.sent < SEND_LIMIT:
                            say, self.sent = self.sent, self.sent + 1
                    self._changed.notify_all()
                if say is not None:
                    self.ws.send(json.dumps({"message": str(say)}))
        except ConnectionClosed as e:
            with self._changed:
                self.closed = e.rcvd.code if e.rcvd else 1006
                self._changed.notify_all()

    def startSending(self) -> None:
        """
        Say message 0; the reader says each next one as the last comes back.
        """
        with self._changed:
            self._sending, self.sent = True, 1
        self.ws.send(json.dumps({"message": "0"}))

    def stopSending(self) -> None:
        """
        Say nothing more; the message in flight still comes back.
        """
        with self._changed:
            self._stopping = True

    def waitFor(self, predicate, what: str, timeout: float = 15) -> None:
        """
        Wait until C{predicate()} holds, re-checked on every frame; fail
        naming this member and C{what} it was waiting for.
        """
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(f"{self.welcome['you']} ({self.id}, worker "
                                     f"{self.worker}): no {what} within {timeout} s")

    def messagesFrom(self, senders) -> list[dict]:
        """
        The chat messages received from C{senders} (members), in arrival order.
        """
        ids = {s.id for s in senders}
        with self._changed:
            return [e for _, e in self.events if e.get("type") == "message" and e["id"] in ids]

    def seqs(self) -> list[int]:
        """
        The seq of every room event received after the welcome, in arrival order.
        """
        with self._changed:
            return [e["seq"] for _, e in self.events if "seq" in e]

    def nodeLost(self) -> dict[str, tuple[float, str]]:
        """
        The members announced as left with C{"reason": "node lost"}: when the
        announcement arrived, and its C{time} (when the reaping node sent it).
        """
        with self._changed:
            return {left["id"]: (when, e["time"]) for when, e in self.events
                    if e.get("type") == "presence"
                    for left in e["left"] if left.get("reason") == "node lost"}

    def close(self) -> None:
        self.ws.close()


def workerOf(service, connectionId: str) -> int:
    """
    Which worker index opened the connection whose welcome had C{connectionId}.
    """
    line = service.waitForLog(rf"open \S+ chat \S+ as {re.escape(connectionId)}$")
    return int(re.search(r"\[worker (\d+) ", line).group(1))


def watchLog(service, pattern: str, timeout: float = 15) -> Callable[[], float]:
    """
    Watch for a log line matching C{pattern} from now on, in a thread; the
    function returned waits for it and says when (C{time.monotonic()}) it came.
    """
    arrived: list[float] = []
    regex = re.compile(pattern)

    def watch() -> None:
        if service.waitFor(lambda: any(regex.search(line) for line in service.lines), timeout):
            arrived.append(time.monotonic())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def when() -> float:
        watcher.join(timeout + 5)
        if not arrived:
            raise AssertionError(f"no log line matching {pattern!r}:\n{service.log()}")
        return arrived[0]

    return when


def join(service, room: str, name: str) -> Member:
    """
    A member of C{room}, its welcome read, its frames read from then on.
    """
    ws = open_(service.url(f"/{room}?name={name}"), "chat")
    welcome = recvUntil(ws, "welcome")
    return Member(ws, welcome, workerOf(service, welcome["id"]))


def spread(service, room: str, each: int) -> dict[int, list[Member]]:
    """
    C{each} members of C{room} on each of the two workers (connections the
    kernel gives to a worker that has enough are closed).  Bounded.
    """
    crowd: dict[int, list[Member]] = {0: [], 1: []}
    for attempt in range(20 * each):
        member = join(service, room, f"p{attempt}")
        if len(crowd[member.worker]) < each:
            crowd[member.worker].append(member)
        else:
            member.close()
        if all(len(members) == each for members in crowd.values()):
            return crowd
    raise AssertionError(f"the kernel never gave both workers {each} connections")


def assertContiguous(member: Member) -> None:
    """
    C{member} received every room event published after its welcome, once
    each and in seq order: the seqs it saw run on from its welcome's.
    """
    seqs, first = member.seqs(), member.welcome["seq"] + 1
    assert seqs == list(range(first, first + len(seqs))), (member.id, member.worker)


def test_a_worker_killed_under_load_costs_the_other_workers_members_nothing(workers):
    """
    SIGKILL to one of two workers while members on both chat: it is logged
    and restarted, its clients drop (1006) and get back into the room on the
    same port, its members are announced as lost within the documented
    bound, and the other worker's members miss nothing published in the room.
    """
    crowd = spread(workers, "faults", 3)
    victims, survivors = crowd[1], crowd[0]
    victimSenders, survivingSenders = victims[:2], survivors[:2]
    for sender in (*victimSenders, *survivingSenders):
        sender.startSending()
    for sender in (*victimSenders, *survivingSenders):  # load through both workers
        sender.waitFor(lambda s=sender: s.echoed >= 50, "50 of its own messages back")
    victim = workerPIDs(workers)[1]
    replacementLog = rf"\[worker 1 pid (?!{victim}\])(\d+)\] .*"
    ready = watchLog(workers, replacementLog + "wsservice ready")
    connected = watchLog(workers, replacementLog + "connected to Redis")
    killed, killedClock = time.monotonic(), time.time()
    os.kill(victim, signal.SIGKILL)

    # Its clients see the connection drop without a close frame and come
    # straight back through the same port, to whichever worker accepts.
    for member in victims:
        member.waitFor(lambda m=member: m.closed is not None, "drop")
        assert member.closed == 1006
    returned = [join(workers, "faults", member.welcome["you"]) for member in victims]
    for old, new in zip(victims, returned):
        assert new.welcome["seq"] >= old.seqs()[-1]  # the room it left, not a new one
        new.waitFor(lambda m=new: m.messagesFrom(survivingSenders), "message after its return")
        new.ws.send(json.dumps({"message": "back"}))
    for member in survivors:
        member.waitFor(lambda m=member: len(m.messagesFrom(returned)) == len(returned),
                       "the returned members' messages")

    # The supervisor logs the death and the restart; the new worker is up.
    workers.waitForLog(r"worker 1 died \(.*signal 9.*\); restarting it in")
    back = max(ready(), connected()) - killed
    replacement = workerPIDs(workers)[1]
    assert replacement != victim
    workers.waitForLog(rf"\[worker 1 pid {replacement}\] .*connected to Redis")

    # Every survivor hears the dead worker's members leave, within the bound.
    lost = {member.id for member in victims}
    for member in survivors:
        member.waitFor(lambda m=member: lost <= set(m.nodeLost()), "'node lost' leaves")
    arrived, sent = max(m.nodeLost()[i] for m in survivors for i in lost)
    leftAfter = arrived - killed
    sentAfter = datetime.fromisoformat(sent.replace("Z", "+00:00")).timestamp() - killedClock
    assert leftAfter <= NODE_LOST_WITHIN, f"sent {sentAfter:.3f} s, here {leftAfter:.3f} s after"

    # The new worker serves the room: a newcomer there hears and is heard.
    newcomer = join(workers, "faults", "newcomer")
    for attempt in range(40):
        if newcomer.worker == 1:
            break
        newcomer.close()
        newcomer = join(workers, "faults", f"newcomer{attempt}")
    assert newcomer.worker == 1
    newcomer.waitFor(lambda: newcomer.messagesFrom(survivingSenders), "message on the new worker")
    newcomer.ws.send(json.dumps({"message": "hello from the new worker"}))
    for member in (*survivors, *returned):
        member.waitFor(lambda m=member: m.messagesFrom([newcomer]), "the newcomer's message")

    for sender in survivingSenders:
        sender.stopSending()
    for sender in survivingSenders:
        sender.waitFor(lambda s=sender: s.echoed == s.sent, "its own last message back")
    for member in (*survivors, *returned, newcomer):
        for sender in survivingSenders:
            last = str(sender.sent - 1)
            member.waitFor(lambda m=member, s=sender, last=last: any(
                e["message"] == last for e in m.messagesFrom([s])), f"{sender.id}'s last message")

    # What "lose nothing" means: every message said on the surviving worker
    # reached each of its members once, in the order said; of the dead
    # worker's senders, everything their worker had published (all they got
    # back, and perhaps the one in flight, at most once: README, loss
    # window); and no event of the room is missing, repeated or out of order.
    for member in survivors:
        assert member.closed is None
        for sender in survivingSenders:
            said = [e["message"] for e in member.messagesFrom([sender])]
            assert said == [str(n) for n in range(sender.sent)], (member.id, sender.id)
        for sender in victimSenders:
            said = [e["message"] for e in member.messagesFrom([sender])]
            assert said == [str(n) for n in range(len(said))], (member.id, sender.id)
            assert sender.echoed <= len(said) <= sender.echoed + 1, (sender.echoed, len(said))
    for member in (*survivors, *returned, newcomer):
        assertContiguous(member)
    assert "Traceback" not in workers.log()
    # The README's figures (shown with -s).
    print(f"worker back after {back:.2f} s, its members announced lost after {leftAfter:.2f} s; "
          f"sent {[s.sent for s in survivingSenders]} and {[s.echoed for s in victimSenders]}")
    for member in (*survivors, *returned, newcomer):
        member.close()
