"""
What L{wsservice.rooms.redis.hub.RedisRoomHub} keeps in Redis, and the Lua
scripts that change it.  Each script runs atomically in Redis, so every node
sees one order per room.

Keys, for a key prefix C{P} (default C{wss:}) and room C{R}::

    P{R}:seq        integer: the room's last sequence number
    P{R}:history    list: the last N recorded events, oldest first, as the
                    exact JSON text members received, at most M bytes
    P{R}:history-bytes  integer: the bytes the history list holds
    P{R}:log        list: every event with a seq, the last K, for recovery;
                    P{R}:log-first is the seq of its first entry (the list is
                    contiguous), P{R}:log-bytes its size
    P{R}:epoch      string: the room's epoch, set when its state is created
    Prooms          sorted set (all scores 0): room names, for listing
    Pidem:{R}:<key> string: "<seq> <epoch> <time>" of the publish made with
                    idempotency key <key>, for five minutes
    Pdb<D>:control  pub/sub channel every node listens on: backend commands
                    such as disconnecting a user everywhere
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

A room's keys expire C{--history-ttl} after its last publish or join, so
Redis does not keep every room ever used.  Its C{epoch} goes with them: a
room that comes back (or a Redis that lost its data) has a new epoch, and a
client resuming from the old one learns it cannot recover.

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

#: Appending to a bounded list with a byte count beside it, dropping the
#: oldest entries past C{size} entries or C{maxBytes} bytes; C{first}, if
#: given, is the key of the seq of its first entry.  (Shared by PUBLISH.)
_APPEND = """
local function append(list, bytesKey, firstKey, body, seq, size, maxBytes)
  local length = redis.call('RPUSH', list, body)
  local bytes
  if length == 1 then
    bytes = #body
    redis.call('SET', bytesKey, bytes)
    if firstKey then redis.call('SET', firstKey, seq) end
  else
    bytes = redis.call('INCRBY', bytesKey, #body)
  end
  while length > size or (bytes > maxBytes and length > 0) do
    local dropped = redis.call('LPOP', list)
    length = length - 1
    bytes = redis.call('DECRBY', bytesKey, #dropped)
    if firstKey then redis.call('INCR', firstKey) end
  end
end
"""

#: KEYS: seq, history, channel, history bytes, members, users, log, log
#: first, log bytes, epoch, rooms.  ARGV: seq floor, origin node, replayed
#: 0|1, history size, history bytes at most, one flag digit per event (1:
#: record it in the history, 2: splice in the room's counts), an epoch for
#: a room that has none, log size, log bytes at most, the room's ttl (ms),
#: the room, the idempotency keys' prefix, then for each event its
#: idempotency key ("" for none), its time and its JSON without epoch or
#: seq (ending with "}").  Returns {epoch, then per event its seq, or for a
#: duplicate "<seq> <epoch> <time>" as first published}.
PUBLISH = _APPEND + """
local ttl = tonumber(ARGV[10])
local epoch = redis.call('GET', KEYS[10])
if not epoch then
  epoch = ARGV[7]
  redis.call('SET', KEYS[10], epoch)
end
local n = (#ARGV - 12) / 3
local results = {}
local fresh = {}
for i = 1, n do
  local key = ARGV[10 + 3 * i]
  local stored = key ~= '' and redis.call('GET', ARGV[12] .. key)
  if stored then results[i] = stored else fresh[#fresh + 1] = i end
end
if #fresh > 0 then
  local m = #fresh
  local last = redis.call('INCRBY', KEYS[1], m)
  local first = last - m + 1
  local floor = tonumber(ARGV[1])
  if first <= floor then
    first = floor + 1
    redis.call('SET', KEYS[1], first + m - 1)
  end
  local size, maxBytes = tonumber(ARGV[4]), tonumber(ARGV[5])
  local logSize, logBytes = tonumber(ARGV[8]), tonumber(ARGV[9])
  local counts = nil
  local out, flags = {}, {}
  for j, i in ipairs(fresh) do
    local seq = first + j - 1
    local flag = tonumber(string.sub(ARGV[6], i, i))
    local body = string.sub(ARGV[12 + 3 * i], 1, -2)
    if flag >= 2 then
      if counts == nil then
        counts = ',"count":' .. string.format('%d', redis.call('HLEN', KEYS[5]))
          .. ',"users":' .. string.format('%d', redis.call('HLEN', KEYS[6]))
      end
      body = body .. counts
    end
    body = body .. ',"epoch":"' .. epoch .. '","seq":' .. string.format('%d', seq) .. '}'
    out[j], flags[j] = body, string.format('%d', flag)
    if flag % 2 == 1 and size > 0 then
      append(KEYS[2], KEYS[4], nil, body, seq, size, maxBytes)
    end
    if logSize > 0 then append(KEYS[7], KEYS[9], KEYS[8], body, seq, logSize, logBytes) end
    local key = ARGV[10 + 3 * i]
    if key ~= '' then
      redis.call('SET', ARGV[12] .. key, string.format('%d', seq) .. ' ' .. epoch .. ' '
        .. ARGV[11 + 3 * i], 'PX', 300000)
    end
    results[i] = seq
  end
  redis.call('PUBLISH', KEYS[3], 'e ' .. string.format('%d', first) .. ' ' .. table.concat(flags)
    .. ' ' .. ARGV[2] .. ' ' .. ARGV[3] .. '\\n' .. table.concat(out, '\\n'))
end
for _, key in ipairs({KEYS[1], KEYS[2], KEYS[4], KEYS[7], KEYS[8], KEYS[9], KEYS[10]}) do
  redis.call('PEXPIRE', key, ttl)
end
redis.call('ZADD', KEYS[11], 0, ARGV[11])
local reply = {epoch}
for i = 1, n do reply[i + 1] = results[i] end
return reply
"""

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
#: user info, log, log first, log bytes, epoch, rooms.  ARGV: the joiner's
#: field, its presence JSON, the room, the page size, its user, an epoch
#: for a room that has none, the room's ttl (ms), and, to resume, the last
#: seq the client had ("" for none) and its epoch.  Adds the joiner, then
#: takes the snapshot.  Returns {seq, history, connections, users, 1 if it
#: is its user's first connection here, the next page's cursor ("": none),
#: the first page of presence JSONs, epoch, -1 (no resume asked) or 0|1
#: (resumed: every event since the resume point follows), the missed
#: events}.
JOIN = _PAGE + """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local first = redis.call('HINCRBY', KEYS[6], ARGV[5], 1) == 1
redis.call('HSET', KEYS[7], ARGV[5], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[3])
redis.call('ZADD', KEYS[12], 0, ARGV[3])
local epoch = redis.call('GET', KEYS[11])
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[11], epoch)
end
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local history = redis.call('LRANGE', KEYS[3], 0, -1)
for _, key in ipairs({KEYS[2], KEYS[3], KEYS[5], KEYS[8], KEYS[9], KEYS[10], KEYS[11]}) do
  redis.call('PEXPIRE', key, tonumber(ARGV[7]))
end
local resumed, missed = -1, {}
if ARGV[8] ~= '' then
  resumed = 0
  local since = tonumber(ARGV[8])
  if ARGV[9] == epoch and since and since <= seq then
    if since == seq then
      resumed = 1
    else
      local logFirst = tonumber(redis.call('GET', KEYS[9]) or '0')
      if logFirst > 0 and since + 1 >= logFirst then
        missed = redis.call('LRANGE', KEYS[8], since + 1 - logFirst, -1)
        resumed = 1
      end
    end
  end
end
local p = page(KEYS[7], '0', 0, tonumber(ARGV[4]))
return {seq, history, redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[6]),
        first and 1 or 0, p[1], p[2], epoch, resumed, missed}
"""

#: KEYS: members, users, user info, seq, epoch.  ARGV: HSCAN cursor,
#: entries to skip, page size.  Returns {connections, users, the next cursor
#: ("": none), the page of presence JSONs, seq, epoch ("" if none)}.
MEMBERS = _PAGE + """
local result = page(KEYS[3], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]))
return {redis.call('HLEN', KEYS[1]), redis.call('HLEN', KEYS[2]), result[1], result[2],
        tonumber(redis.call('GET', KEYS[4]) or '0'), redis.call('GET', KEYS[5]) or ''}
"""

#: KEYS: rooms.  ARGV: key prefix, first name ("[" or "(" and a name, as
#: ZRANGEBYLEX takes it), last ("[...\xff" for a prefix, or "+"), at most
#: how many.  Returns {name, connections, users, seq, epoch, ...} of rooms
#: that still exist, forgetting the ones whose keys expired.  Keys are
#: built here from the prefix: one Redis server, not Redis Cluster.
ROOMS = """
local out = {}
for _, room in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))) do
  local base = ARGV[1] .. '{' .. room .. '}:'
  local members = redis.call('HLEN', base .. 'members')
  local seq = redis.call('GET', base .. 'seq')
  if members == 0 and not seq then
    redis.call('ZREM', KEYS[1], room)
  else
    for _, v in ipairs({room, members, redis.call('HLEN', base .. 'users'),
                        tonumber(seq or '0'), redis.call('GET', base .. 'epoch') or ''}) do
      out[#out + 1] = v
    end
  end
end
return out
"""

#: KEYS: log, log first, seq, epoch.  ARGV: since, at most how many.
#: Returns {epoch ("" if none), seq, the logged events after since}.
HISTORY = """
local seq = tonumber(redis.call('GET', KEYS[3]) or '0')
local logFirst = tonumber(redis.call('GET', KEYS[2]) or '0')
local since, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local events = {}
if logFirst > 0 and limit > 0 then
  local start = math.max(0, since + 1 - logFirst)
  events = redis.call('LRANGE', KEYS[1], start, start + limit - 1)
end
return {redis.call('GET', KEYS[4]) or '', seq, events}
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

#: KEYS: members, seq, log, this node's rooms, users, user info, epoch.
#: ARGV: this node's id, seq floor, the room, an epoch for a room that has
#: none, then field, user, JSON triples of this node's members.  Replaces
#: this node's entries (after an outage they may be stale or, after a Redis
#: restart, gone) and their users' counts, raises the seq counter to the
#: floor, and returns {the log, the epoch} so the node can catch up.
RESYNC = _DEPART + """
local mine = ARGV[1] .. '/'
local wanted = {}
for i = 5, #ARGV, 3 do wanted[ARGV[i]] = {ARGV[i + 1], ARGV[i + 2]} end
local epoch = redis.call('GET', KEYS[7])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[7], epoch)
end
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
return {redis.call('LRANGE', KEYS[3], 0, -1), epoch}
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
