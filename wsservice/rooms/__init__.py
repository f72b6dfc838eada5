"""
The rooms handlers share: implementations of L{wsservice.interfaces.IRoomHub}.

  - L{local.RoomHub}: every member in this process.
  - L{redis.hub.RedisRoomHub}: rooms that span processes and machines
    through Redis (C{--broker}).

Both keep one order per room: every member receives each event once, with
a strictly increasing C{seq}, sender included, after its join snapshot.
Both stamp and encode events the same way (L{events}).

This package imports neither L{wsservice.websocket} nor L{wsservice.web}:
a hub is given the function that frames a message (C{prepare}).
"""
