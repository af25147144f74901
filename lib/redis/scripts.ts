/**
 * The Lua scripts of the Redis bus. Each touches the keys of ONE room (one hash tag, one slot), so it runs on one
 * shard of a cluster, atomically, in one round trip. Key layout: lib/redis/keys.ts.
 */

// shared helpers: integer formatting (Lua 5.1 prints large numbers in exponent form), a new epoch, server time
const HELPERS = `
local function fmt (n) return string.format('%d', n) end
local function nowMs ()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- a room's epoch: the server's clock in microseconds (mod 2^31 s) in base 36; a room's epochs never repeat
local function newEpoch ()
  local t = redis.call('TIME')
  local n = (tonumber(t[1]) % 2147483648) * 1000000 + tonumber(t[2])
  local digits = '0123456789abcdefghijklmnopqrstuvwxyz'
  local s = ''
  repeat
    local d = n % 36
    s = string.sub(digits, d + 1, d + 1) .. s
    n = math.floor(n / 36)
  until n == 0
  return s
end
`

/**
 * KEYS: meta, stream. ARGV: maxlen, ttl ms, channel, max event bytes, tag, event, data JSON, time, publish command
 * (PUBLISH, or SPUBLISH on a cluster). The room's next offset under its epoch (a new epoch, and an emptied stream,
 * when the meta is gone), the event appended with approximate trimming (or, too large, no history kept or
 * refused by the stream, recorded as not kept), both keys' TTL renewed, and one message on the room's channel:
 * `epoch \n offset \n time \n tag \n event \n data`. Returns {epoch, offset}.
 */
export const PUBLISH = `${HELPERS}
local e = redis.call('HGET', KEYS[1], 'e')
if not e then
  e = newEpoch()
  redis.call('HSET', KEYS[1], 'e', e)
  redis.call('DEL', KEYS[2])
end
local o = redis.call('HINCRBY', KEYS[1], 'o', 1)
local id = fmt(o)
local kept = false
if ARGV[1] ~= '0' and #ARGV[7] <= tonumber(ARGV[4]) then
  -- pcall: a stream ahead of the counter (it should not be) costs the event its place in history, not the publish
  kept = type(redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], id .. '-0', 'e', ARGV[6], 'd', ARGV[7], 't', ARGV[8])) == 'string'
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
if not kept then redis.call('HSET', KEYS[1], 'g', id) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call(ARGV[9], ARGV[3], e .. '\\n' .. id .. '\\n' .. ARGV[8] .. '\\n' .. ARGV[5] .. '\\n' .. ARGV[6] .. '\\n' .. ARGV[7])
return {e, o}
`

/**
 * KEYS: meta, stream. ARGV: since epoch, since offset, repair (1|0). Returns {epoch, offset, recovered, entries}:
 * epoch '' when the room has no history at all. Another epoch: every kept entry, not recovered. A position past
 * the room's last offset: nothing, not recovered, and with repair a new epoch (the history behind it was lost).
 */
export const HISTORY = `${HELPERS}
local m = redis.call('HMGET', KEYS[1], 'e', 'o', 'g')
local e = m[1]
if not e then return {'', 0, 0, {}} end
local o = tonumber(m[2]) or 0
local g = tonumber(m[3]) or 0
if e ~= ARGV[1] then return {e, o, 0, redis.call('XRANGE', KEYS[2], '-', '+')} end
local since = tonumber(ARGV[2])
if since > o then
  if ARGV[3] == '1' then
    e = newEpoch()
    redis.call('HSET', KEYS[1], 'e', e)
  end
  return {e, o, 0, {}}
end
if since == o then return {e, o, 1, {}} end
local entries = redis.call('XRANGE', KEYS[2], fmt(since + 1) .. '-0', '+')
local recovered = 0
if since >= g and #entries > 0 and tonumber(string.match(entries[1][1], '^(%d+)')) == since + 1 then recovered = 1 end
return {e, o, recovered, entries}
`

/** KEYS: meta, stream. ARGV: ttl ms. The room's {epoch, offset}; starts its epoch when it has none. */
export const POSITION = `${HELPERS}
local m = redis.call('HMGET', KEYS[1], 'e', 'o')
if m[1] then return {m[1], tonumber(m[2]) or 0} end
local e = newEpoch()
redis.call('HSET', KEYS[1], 'e', e, 'o', 0)
redis.call('DEL', KEYS[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {e, 0}
`

/**
 * KEYS: presence hash of a room. ARGV: instance, ttl ms, mode (set|add), members, then user, count pairs. `add`
 * adds the counts to this instance's (joins and leaves of one tick), `set` replaces them (after Redis lost them).
 * Renews this instance's expiry in the room (Redis time + ttl); an instance with no member left is removed.
 */
export const PRESENCE_WRITE = `${HELPERS}
local id = ARGV[1]
local ttl = tonumber(ARGV[2])
if ARGV[3] == 'set' then
  local all = redis.call('HKEYS', KEYS[1])
  local mine = {}
  for _, f in ipairs(all) do
    if string.sub(f, 1, #id + 1) == id .. ':' then mine[#mine + 1] = f end
  end
  for i = 1, #mine, 1000 do redis.call('HDEL', KEYS[1], unpack(mine, i, math.min(i + 999, #mine))) end
end
local n = redis.call('HINCRBY', KEYS[1], id .. ':n', ARGV[4])
for i = 5, #ARGV, 2 do
  local f = id .. ':u:' .. ARGV[i]
  if redis.call('HINCRBY', KEYS[1], f, ARGV[i + 1]) <= 0 then redis.call('HDEL', KEYS[1], f) end
end
if n <= 0 then
  redis.call('HDEL', KEYS[1], id, id .. ':n')
else
  redis.call('HSET', KEYS[1], id, fmt(nowMs() + ttl))
  redis.call('PEXPIRE', KEYS[1], fmt(ttl * 3))
end
return n
`

/** KEYS: presence hash. ARGV: instance, ttl ms. The heartbeat of an instance in a room; 0 when Redis lost its part. */
export const PRESENCE_TOUCH = `${HELPERS}
if redis.call('HEXISTS', KEYS[1], ARGV[1] .. ':n') == 0 then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], fmt(nowMs() + ttl))
redis.call('PEXPIRE', KEYS[1], fmt(ttl * 3))
return 1
`

/**
 * KEYS: presence hash. ARGV: own instance. {members, user, user, ...} of every OTHER instance whose expiry has not
 * passed (a user may repeat); the fields of expired instances (crashed) are removed.
 */
export const PRESENCE_READ = `${HELPERS}
local now = nowMs()
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
for i = 1, #all, 2 do
  if not string.find(all[i], ':', 1, true) and tonumber(all[i + 1]) > now then alive[all[i]] = true end
end
local out = {0}
local dead = {}
for i = 1, #all, 2 do
  local f = all[i]
  local colon = string.find(f, ':', 1, true)
  local id = colon and string.sub(f, 1, colon - 1) or f
  if not alive[id] then
    dead[#dead + 1] = f
  elseif id ~= ARGV[1] and colon then
    if string.sub(f, colon + 1, colon + 2) == 'n' then
      out[1] = out[1] + tonumber(all[i + 1])
    else
      out[#out + 1] = string.sub(f, colon + 3)
    end
  end
end
for i = 1, #dead, 1000 do redis.call('HDEL', KEYS[1], unpack(dead, i, math.min(i + 999, #dead))) end
return out
`

/**
 * KEYS: live. ARGV: ttl ms, a member prefix or ''. Lists the prefix as alive now (server time, so clocks of the
 * instances need not agree), forgets prefixes not listed within the last ttl, and returns {added, prefixes...}:
 * added is 1 when the prefix was not listed (first beat, or Redis lost the list).
 */
export const LIVE = `${HELPERS}
local now = nowMs()
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now - ttl))
local added = 0
if ARGV[2] ~= '' then
  added = redis.call('ZADD', KEYS[1], fmt(now), ARGV[2])
  redis.call('PEXPIRE', KEYS[1], fmt(ttl * 4))
end
local out = redis.call('ZRANGE', KEYS[1], 0, -1)
table.insert(out, 1, added)
return out
`

/** KEYS: key. ARGV: token. Deletes the key only while it still holds that claim (not a later holder's, not done). */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`
