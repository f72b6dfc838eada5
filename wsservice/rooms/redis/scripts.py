"""
What L{wsservice.rooms.redis.hub.RedisRoomHub} keeps in Redis, and the Lua
scripts that change it.  Each script runs atomically in Redis, so every node
sees one order per room.

Keys, for a key prefix C{P} (default C{wss:}) and room C{R}::

    P{R}:seq        integer: the room's last sequence number
    P{R}:history    list: the last N recorded events, oldest first, as the
                    exact JSON text members received, at most M bytes
    P{R}:history-bytes  integer: the bytes the history list holds
    P{R}:members    hash: member field -> presence JSON; a field is
                    "<node id>/<n>", one per connection, so it belongs to a node
    P{R}:users      hash: user (a presence's "id") -> its connections in the room
    P{R}:user-info  hash: user -> presence JSON: what member pages list, one
                    entry per user however many connections it has
    Pdb<D>:{R}:events  pub/sub channel of the room in database D (channels
                    are not per database in Redis)
    Pdb<D>:node:<id>:ping  pub/sub channel a node pings itself on, to know
                    its subscription delivers
    Pnodes          sorted set: node id -> the time (ms, Redis clock) its
                    heartbeat expires; refreshed every heartbeat
    Pnode:<id>:rooms  set: the rooms where node <id> registered members, so
                    a dead node's members can be found without a scan

A node whose heartbeat expired is reaped by exactly one live node (the one
whose C{REAP} script removed it from C{Pnodes}): its members are removed
from each of its rooms, and the reaper announces them as having left.

A room's C{seq} and C{history} keys expire after a day without publishes
or joins (L{ROOM_TTL_MS}), so Redis does not keep every room ever used.

The messages on a room's channel are described in
L{wsservice.rooms.redis.wire}.

Sequence numbers: L{PUBLISH} takes the events one node published in one
reactor turn, increments the room's C{seq} once for all of them, splices
each number into its event's JSON (so the history entry and the live frame
are the same bytes), appends the recorded ones to the history list, trims
it, and publishes them as one channel message, in one script.  Redis runs
scripts one at a time, so the seq order is the delivery order on every
node.  The caller passes a floor (the highest seq its members have seen):
after Redis lost its data the counter restarts above it, so clients never
see a seq go backwards.

Presence is O(1) per join: L{JOIN} returns the first page of members
(C{HSCAN}) and their count, never the whole room, and joins and leaves
publish nothing; the presence events that announce them are ordinary
events whose counts the script splices in (flag 2 of L{PUBLISH}).
"""

from __future__ import annotations

#: How long a room's seq and history outlive its last publish or join.
ROOM_TTL_MS = 24 * 3600 * 1000

#: KEYS: seq, history, channel, history bytes, members, users.  ARGV: seq floor,
#: origin node, replayed 0|1, history size, history bytes at most, one flag
#: digit per event (1: record it, 2: splice in the room's counts), then
#: each event's JSON without seq (ending with "}").  Returns the first
#: event's seq.
PUBLISH = """
local ROOM_TTL_MS = @ROOM_TTL_MS@
local n = #ARGV - 6
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
local floor = tonumber(ARGV[1])
if first <= floor then
  first = floor + 1
  last = first + n - 1
  redis.call('SET', KEYS[1], last)
end
local size = tonumber(ARGV[4])
local maxBytes = tonumber(ARGV[5])
local flags = ARGV[6]
local count = nil
local out = {}
local length = nil
local bytes = nil
for i = 1, n do
  local flag = tonumber(string.sub(flags, i, i))
  local body = string.sub(ARGV[6 + i], 1, -2)
  if flag >= 2 then
    if count == nil then
      count = ',"count":' .. string.format('%d', redis.call('HLEN', KEYS[5]))
        .. ',"users":' .. string.format('%d', redis.call('HLEN', KEYS[6]))
    end
    body = body .. count
  end
  body = body .. ',"seq":' .. string.format('%d', first + i - 1) .. '}'
  out[i] = body
  if flag % 2 == 1 and size > 0 then
    length = redis.call('RPUSH', KEYS[2], body)
    if length == 1 then
      bytes = #body
      redis.call('SET', KEYS[4], bytes)
    else
      bytes = redis.call('INCRBY', KEYS[4], #body)
    end
    while length > size or (bytes > maxBytes and length > 0) do
      local dropped = redis.call('LPOP', KEYS[2])
      length = length - 1
      bytes = redis.call('DECRBY', KEYS[4], #dropped)
    end
  end
end
if length ~= nil then
  redis.call('PEXPIRE', KEYS[2], ROOM_TTL_MS)
  redis.call('PEXPIRE', KEYS[4], ROOM_TTL_MS)
end
redis.call('PEXPIRE', KEYS[1], ROOM_TTL_MS)
redis.call('PUBLISH', KEYS[3], 'e ' .. string.format('%d', first) .. ' ' .. flags .. ' '
  .. ARGV[2] .. ' ' .. ARGV[3] .. '\\n' .. table.concat(out, '\\n'))
return first
""".replace("@ROOM_TTL_MS@", str(ROOM_TTL_MS))

#: A page of a members hash: at most C{size} presence JSONs from the cursor
#: C{"<HSCAN cursor>:<entries of that batch already given>"}, and the next
#: such cursor ("" after the last page).  HSCAN alone cannot page a small
#: hash, which it returns whole whatever its COUNT.
_PAGE = """
local function page(key, cursor, skip, size)
  local out = {}
  while true do
    local scanned = redis.call('HSCAN', key, cursor, 'COUNT', size)
    local flat = scanned[2]
    local n = #flat / 2
    local i = skip
    while i < n and #out < size do
      out[#out + 1] = flat[2 * i + 2]
      i = i + 1
    end
    if i < n then return {cursor .. ':' .. i, out} end
    cursor, skip = scanned[1], 0
    if cursor == '0' then return {'', out} end
    if #out >= size then return {cursor .. ':0', out} end
  end
end
"""

#: KEYS: members, seq, history, this node's rooms, history bytes, users,
#: user info.  ARGV: the joiner's field, its presence JSON, the room, the
#: page size, its user.  Adds the joiner, then takes the snapshot.  Returns
#: {seq, history, connections, users, 1 if it is its user's first
#: connection here, the next page's cursor ("": none), the first page of
#: presence JSONs}.
JOIN = _PAGE + """
local ROOM_TTL_MS = @ROOM_TTL_MS@
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local first = redis.call('HINCRBY', KEYS[6], ARGV[5], 1) == 1
redis.call('HSET', KEYS[7], ARGV[5], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local history = redis.call('LRANGE', KEYS[3], 0, -1)
redis.call('PEXPIRE', KEYS[2], ROOM_TTL_MS)
redis.call('PEXPIRE', KEYS[3], ROOM_TTL_MS)
redis.call('PEXPIRE', KEYS[5], ROOM_TTL_MS)
local p = page(KEYS[7], '0', 0, tonumber(ARGV[4]))
return {seq, history, redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[6]),
        first and 1 or 0, p[1], p[2]}
""".replace("@ROOM_TTL_MS@", str(ROOM_TTL_MS))

#: KEYS: members, users, user info.  ARGV: HSCAN cursor, entries to skip,
#: page size.  Returns {connections, users, the next cursor ("": none), the
#: page of presence JSONs}.
MEMBERS = _PAGE + """
local result = page(KEYS[3], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
return {redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[2]), result[1], result[2]}
"""

#: Removing one connection of a user from a room's hashes; true if it was
#: the user's last.  (Shared by LEAVE, RESYNC and REAP.)
_DEPART = """
local function depart(members, users, info, field, user)
  if redis.call('HDEL', members, field) == 0 then return false end
  if redis.call('HINCRBY', users, user, -1) > 0 then return false end
  redis.call('HDEL', users, user)
  redis.call('HDEL', info, user)
  return true
end
"""

#: KEYS: members, users, user info.  ARGV: the field, its user.  Returns 1
#: if that was the user's last connection in the room, 0 if not (or if the
#: field was not there).
LEAVE = _DEPART + """
if depart(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2]) then return 1 end
return 0
"""

#: KEYS: members, user info.  ARGV: the field, its user, its presence JSON.
UPDATE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

#: KEYS: members, seq, history, this node's rooms, users, user info.  ARGV:
#: this node's id, seq floor, the room, then field, user, JSON triples of
#: this node's members.  Replaces this node's entries (after an outage they
#: may be stale or, after a Redis restart, gone) and their users' counts,
#: raises the seq counter to the floor, and returns the history so the node
#: can catch up.
RESYNC = _DEPART + """
local mine = ARGV[1] .. '/'
local wanted = {}
for i = 4, #ARGV, 3 do wanted[ARGV[i]] = {ARGV[i + 1], ARGV[i + 2]} end
redis.call('SADD', KEYS[4], ARGV[3])
local flat = redis.call('HGETALL', KEYS[1])
local present = {}
for i = 1, #flat, 2 do
  if string.sub(flat[i], 1, #mine) == mine then
    if wanted[flat[i]] then
      present[flat[i]] = true
    else
      depart(KEYS[1], KEYS[5], KEYS[6], flat[i], cjson.decode(flat[i + 1]).id or flat[i])
    end
  end
end
for field, member in pairs(wanted) do
  redis.call('HSET', KEYS[1], field, member[2])
  redis.call('HSET', KEYS[6], member[1], member[2])
  if not present[field] then redis.call('HINCRBY', KEYS[5], member[1], 1) end
end
local floor = tonumber(ARGV[2])
if tonumber(redis.call('GET', KEYS[2]) or '0') < floor then
  redis.call('SET', KEYS[2], floor)
end
return redis.call('LRANGE', KEYS[3], 0, -1)
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

#: KEYS: nodes.  ARGV: key prefix, at most how many dead nodes to reap.
#: Removes nodes whose heartbeat expired and their members; returns the
#: removed members (flat room, field, JSON, 1 if its user's last connection
#: there, ...).  Keys are built here from the prefix, so this is for one
#: Redis server, not Redis Cluster.
REAP = _DEPART + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[2]))
local removed = {}
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  local roomsKey = ARGV[1] .. 'node:' .. node .. ':rooms'
  local mine = node .. '/'
  for _, room in ipairs(redis.call('SMEMBERS', roomsKey)) do
    local base = ARGV[1] .. '{' .. room .. '}:'
    local hash = base .. 'members'
    local flat = redis.call('HGETALL', hash)
    for i = 1, #flat, 2 do
      if string.sub(flat[i], 1, #mine) == mine then
        local last = depart(hash, base .. 'users', base .. 'user-info', flat[i],
                            cjson.decode(flat[i + 1]).id or flat[i])
        table.insert(removed, room); table.insert(removed, flat[i]); table.insert(removed, flat[i + 1])
        table.insert(removed, last and 1 or 0)
      end
    end
  end
  redis.call('DEL', roomsKey)
end
return removed
"""
