"""
Rooms that span processes and machines through Redis: the same
L{IRoomHub} as L{wsservice.rooms.local.RoomHub}, with membership, sequence numbers
and history kept in Redis and events fanned out over Redis pub/sub.

How it fits together (the keys and scripts are in L{scripts}, the channel
messages in L{wire}, one node's view of a room and its ordering rule in
L{view}, the hub itself in L{hub}, the reconnecting connections in L{link}):

  - Each node subscribes to a room's channel while it has members in that
    room, and delivers what arrives there to its own members.  A publish
    never delivers locally directly: the publisher's node gets the event
    back from the channel like every other node, so each member receives
    each event exactly once, in seq order.
  - A joiner gets its snapshot (seq, history, members) from one atomic
    script, run only after the node's subscription is confirmed.  Until the
    snapshot is in, live events for the joiner are buffered; those with a
    seq at or below the snapshot's are dropped (they are in the snapshot),
    the rest follow the welcome.  Nothing is lost or repeated.
  - Presence: each member is a field of the room's members hash, owned by
    its node.  Every C{heartbeat} seconds a node pushes its own expiry
    (three heartbeats ahead) in a sorted set of nodes and reaps the nodes
    whose expiry has passed: one node removes each dead node's members from
    the rooms it had, and publishes a leave event for each.  So a crashed
    node's members are gone within four heartbeats.
  - Without Redis (down at start, or lost later) rooms keep working on this
    node alone: local delivery, local seq, local history.  Publishes made
    meanwhile are queued (bounded) and published to Redis once it is back;
    then this node re-registers its members and re-subscribes its rooms.
"""
