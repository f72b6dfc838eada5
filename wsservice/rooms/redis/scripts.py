"""
What L{wsservice.rooms.redis.hub.RedisRoomHub} keeps in Redis, and the Lua scripts
that change it.  Each script runs atomically in Redis, so every node sees
one order per room.

Keys, for a key prefix C{P} (default C{wss:}) and room C{R}::

    P{R}:seq        integer: the room's last sequence number
    P{R}:history    list: the last N recorded events, oldest first, as the
                    exact JSON text members received, at most M bytes
    P{R}:history-bytes  integer: the bytes the history list holds
    P{R}:members    hash: member field -> presence JSON; a field is
                    "<node id>/<n>", so a member belongs to one node
    Pdb<D>:{R}:events  pub/sub channel of the room in database D (channels
                    are not per database in Redis)
    Pnodes          sorted set: node id -> the time (ms, Redis clock) its
                    heartbeat expires; refreshed every heartbeat
    Pnode:<id>:rooms  set: the rooms where node <id> registered members, so
                    a dead node's members can be found without a scan

A node whose heartbeat expired is reaped by exactly one live node (the one
whose C{REAP} script removed it from C{Pnodes}): its members are removed
from each of its rooms, and the reaper publishes a leave event for each.

A room's C{seq} and C{history} keys expire after a day without publishes
or joins (L{ROOM_TTL_MS}), so Redis does not keep every room ever used.

The messages on a room's channel are described in
L{wsservice.rooms.redis.wire}.

Sequence numbers: L{PUBLISH} increments the room's C{seq} key, splices the
number into the event's JSON (so the history entry and the live frame are
the same bytes), appends it to the history list and trims it, and publishes
it, in one script.  Redis runs scripts one at a time, so the seq order is the
delivery order on every node.  The caller passes a floor (the highest seq its
members have seen): after Redis lost its data the counter restarts above it,
so clients never see a seq go backwards.
"""

from __future__ import annotations

#: How long a room's seq and history outlive its last publish or join.
ROOM_TTL_MS = 24 * 3600 * 1000

#: KEYS: seq, history, channel, history bytes.  ARGV: event JSON without seq
#: (ends with "}"), recorded 0|1, history size, seq floor, origin node,
#: replayed 0|1, history bytes at most.  Returns the event's seq.
PUBLISH = """
local ROOM_TTL_MS = @ROOM_TTL_MS@
local seq = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[4])
if seq <= floor then
  seq = floor + 1
  redis.call('SET', KEYS[1], seq)
end
local body = string.sub(ARGV[1], 1, -2) .. ',"seq":' .. string.format('%d', seq) .. '}'
local size = tonumber(ARGV[3])
if ARGV[2] == '1' and size > 0 then
  local length = redis.call('RPUSH', KEYS[2], body)
  local bytes
  if length == 1 then
    bytes = #body
    redis.call('SET', KEYS[4], bytes)
  else
    bytes = redis.call('INCRBY', KEYS[4], #body)
  end
  local maxBytes = tonumber(ARGV[7])
  while length > size or (bytes > maxBytes and length > 0) do
    local dropped = redis.call('LPOP', KEYS[2])
    length = length - 1
    bytes = redis.call('DECRBY', KEYS[4], #dropped)
  end
  redis.call('PEXPIRE', KEYS[4], ROOM_TTL_MS)
end
redis.call('PEXPIRE', KEYS[1], ROOM_TTL_MS)
redis.call('PEXPIRE', KEYS[2], ROOM_TTL_MS)
redis.call('PUBLISH', KEYS[3], 'e ' .. string.format('%d', seq) .. ' ' .. ARGV[2] .. ' '
  .. ARGV[5] .. ' ' .. ARGV[6] .. '\\n' .. body)
return seq
""".replace("@ROOM_TTL_MS@", str(ROOM_TTL_MS))

#: KEYS: members, seq, history, channel, nodes, this node's rooms, history
#: bytes.  ARGV:
#: the joiner's field, its presence JSON, the room.  Takes the snapshot
#: (leaving out members of nodes whose heartbeat expired: the reaper removes
#: them), then adds the joiner.  Returns {seq, history, members (flat field,
#: JSON, ...)}.
JOIN = """
local ROOM_TTL_MS = @ROOM_TTL_MS@
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local members = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local node = string.match(flat[i], '^([^/]+)/')
  local expires = node and tonumber(redis.call('ZSCORE', KEYS[5], node) or '0')
  if expires and expires >= now then
    table.insert(members, flat[i]); table.insert(members, flat[i + 1])
  end
end
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local history = redis.call('LRANGE', KEYS[3], 0, -1)
redis.call('PEXPIRE', KEYS[2], ROOM_TTL_MS)
redis.call('PEXPIRE', KEYS[3], ROOM_TTL_MS)
redis.call('PEXPIRE', KEYS[7], ROOM_TTL_MS)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[6], ARGV[3])
redis.call('PUBLISH', KEYS[4], 'p ' .. ARGV[1] .. '\\n' .. ARGV[2])
return {seq, history, members}
""".replace("@ROOM_TTL_MS@", str(ROOM_TTL_MS))

#: KEYS: members, channel.  ARGV: field, presence JSON (empty removes).
PRESENCE = """
if ARGV[2] == '' then
  if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('PUBLISH', KEYS[2], 'p ' .. ARGV[1] .. '\\n' .. ARGV[2])
return 1
"""

#: KEYS: members, seq, channel, history, this node's rooms.  ARGV: this
#: node's id, seq floor, the room, then field, JSON pairs of this node's
#: members.  Replaces this node's
#: entries (after an outage they may be stale or, after a Redis restart,
#: gone), raises the seq counter to the floor, returns {the other nodes'
#: members (flat field, JSON, ...), the history} so the node can catch up.
RESYNC = """
local mine = ARGV[1] .. '/'
local wanted = {}
for i = 4, #ARGV, 2 do wanted[ARGV[i]] = ARGV[i + 1] end
redis.call('SADD', KEYS[5], ARGV[3])
local others = {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, #mine) == mine then
    if not wanted[flat[i]] then
      redis.call('HDEL', KEYS[1], flat[i])
      redis.call('PUBLISH', KEYS[3], 'p ' .. flat[i] .. '\\n')
    end
  else
    table.insert(others, flat[i]); table.insert(others, flat[i + 1])
  end
end
for field, info in pairs(wanted) do
  redis.call('HSET', KEYS[1], field, info)
  redis.call('PUBLISH', KEYS[3], 'p ' .. field .. '\\n' .. info)
end
local floor = tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[2]) or '0') < floor then
  redis.call('SET', KEYS[2], floor)
end
return {others, redis.call('LRANGE', KEYS[4], 0, -1)}
"""

#: KEYS: nodes, this node's rooms.  ARGV: node id, TTL in milliseconds.
#: Returns 1 if the node was still registered and alive (its members are
#: still in Redis), 0 if it had expired, been reaped or Redis lost it (the
#: node must register its members again).
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if expires >= now then return 1 end
return 0
"""

#: KEYS: nodes.  ARGV: key prefix, channel prefix (up to the room), at most
#: how many dead nodes to reap.  Removes nodes whose heartbeat expired and
#: their members; returns the removed members (flat room, field, JSON, ...).
#: Keys are built here from the prefix, so this is for one Redis server,
#: not Redis Cluster.
REAP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[3]))
local removed = {}
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  local roomsKey = ARGV[1] .. 'node:' .. node .. ':rooms'
  local mine = node .. '/'
  for _, room in ipairs(redis.call('SMEMBERS', roomsKey)) do
    local hash = ARGV[1] .. '{' .. room .. '}:members'
    local flat = redis.call('HGETALL', hash)
    for i = 1, #flat, 2 do
      if string.sub(flat[i], 1, #mine) == mine then
        redis.call('HDEL', hash, flat[i])
        redis.call('PUBLISH', ARGV[2] .. room .. '}:events', 'p ' .. flat[i] .. '\\n')
        table.insert(removed, room); table.insert(removed, flat[i]); table.insert(removed, flat[i + 1])
      end
    end
  end
  redis.call('DEL', roomsKey)
end
return removed
"""
