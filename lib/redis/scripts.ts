/**
 * The Lua scripts of the Redis bus. Each runs atomically on the server, so one publish is one round trip and a
 * constant number of commands whatever the room size or the number of instances.
 *
 * Keys (prefix `p`, default `gw`):
 * - `p:clock`               hash { epoch, seq }: the id source. Losing it (flush, restart without persistence,
 *                           eviction) loses `seq` too, and the next publish creates a fresh epoch: old ids are foreign.
 * - `p:h:<epoch>:<room>`    stream of the room's last `historySize` events, entry id `<seq>-0`, fields
 *                           e (event), d (data JSON), t (time), p (seq of the room's previous event, or a bound on
 *                           what may have been forgotten before it). PEXPIREd `historyTtlMs` after the last publish.
 * - `p:ticks:<epoch>`       stream of (server time → seq) marks, one every `tickMs`: bounds the last seq of a room
 *                           whose stream expired, so a resume from before that expiry reports a gap.
 * Channels: `p:events` (every event of every room, one channel), `p:direct:<member prefix>` and `p:reply:<bus id>`.
 */

// shared helpers: integer formatting (Lua 5.1 prints large numbers in exponent form), ids, the "previous" bound
const HELPERS = `
local function fmt (n) return string.format('%d', n) end
local function idSeq (id) return tonumber(string.match(id, '^(%d+)')) end
local function nowMs ()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- the highest seq any expired stream of this epoch can have held: the first mark taken after now - ttl (+ margin
-- for clock skew); with no such mark everything up to fallback is unknown
local function expiredBound (ticks, now, ttl, margin, fallback)
  local first = redis.call('XRANGE', ticks, fmt(now - ttl + margin), '+', 'COUNT', 1)
  if #first == 0 then return fallback end
  local s = tonumber(first[1][2][2])
  if s > fallback then return fallback end
  return s
end
-- seq of the latest event of a room's stream; if the stream is gone, the bound above
local function latest (stream, ticks, now, ttl, margin, fallback)
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
  if #last > 0 then return idSeq(last[1][1]) end
  if redis.call('EXISTS', stream) == 1 then
    -- an empty stream (historySize 0) still knows its last id
    local info = redis.call('XINFO', 'STREAM', stream)
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then return idSeq(info[i + 1]) end
    end
  end
  return expiredBound(ticks, now, ttl, margin, fallback)
end
`

/**
 * KEYS: clock, room stream, ticks. ARGV: expected epoch, fresh epoch, maxlen, ttl ms, tick ms, margin ms, channel,
 * origin, token, room, event, data JSON. Returns {0, epoch} when the caller's epoch is stale (nothing written),
 * else {1, epoch, seq, time}. The message is `origin \n token \n epoch \n seq \n time \n room \n event \n data`.
 */
export const APPEND = `${HELPERS}
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
if epoch ~= ARGV[1] then return {0, epoch} end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local now = nowMs()
local ttl = tonumber(ARGV[4])
local tick = tonumber(ARGV[5])
local prev = latest(KEYS[2], KEYS[3], now, ttl, tonumber(ARGV[6]), seq - 1)
local mark = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if #mark == 0 or now - idSeq(mark[1][1]) >= tick then
  redis.call('XADD', KEYS[3], 'MINID', '~', fmt(now - 2 * ttl), '*', 's', fmt(seq))
  redis.call('PEXPIRE', KEYS[3], fmt(2 * ttl + tick))
end
redis.call('XADD', KEYS[2], 'MAXLEN', '=', ARGV[3], fmt(seq) .. '-0', 'e', ARGV[11], 'd', ARGV[12], 't', fmt(now), 'p', fmt(prev))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[7], ARGV[8] .. '\\n' .. ARGV[9] .. '\\n' .. epoch .. '\\n' .. fmt(seq) .. '\\n' .. fmt(now) .. '\\n' .. ARGV[10] .. '\\n' .. ARGV[11] .. '\\n' .. ARGV[12])
return {1, epoch, seq, now}
`

/**
 * KEYS: clock, room stream, ticks. ARGV: expected epoch, since epoch, since seq, ttl ms, margin ms.
 * Returns {2} when Redis holds no clock at all, {0, epoch} when the caller's epoch is stale, else
 * {1, recovered (0|1), entries}.
 */
export const HISTORY = `${HELPERS}
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {2} end
if epoch ~= ARGV[1] then return {0, epoch} end
if ARGV[2] ~= epoch then return {1, 0, redis.call('XRANGE', KEYS[2], '-', '+')} end
local current = tonumber(redis.call('HGET', KEYS[1], 'seq'))
local since = tonumber(ARGV[3])
if since > current then return {1, 0, {}} end
local entries = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3] .. '-0', '+')
local before
if #entries > 0 then
  local fields = entries[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'p' then before = tonumber(fields[i + 1]) end
  end
else
  before = latest(KEYS[2], KEYS[3], nowMs(), tonumber(ARGV[4]), tonumber(ARGV[5]), current)
end
if before ~= nil and before <= since then return {1, 1, entries} end
return {1, 0, entries}
`

/** KEYS: instances. ARGV: bus id, ttl ms. Returns 1 when this instance was not listed (first beat, flush, stall). */
export const BEAT = `${HELPERS}
local now = nowMs()
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now - ttl))
local added = redis.call('ZADD', KEYS[1], fmt(now), ARGV[1])
redis.call('PEXPIRE', KEYS[1], fmt(ttl * 4))
return added
`

/**
 * KEYS: instances. ARGV: prefix, room, ttl ms, own bus id. The member values (`-` or `u<user>`) of `room` on every
 * other live instance, one array per instance. Reads per-instance keys it derives itself: standalone Redis only.
 */
export const PRESENCE = `${HELPERS}
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. fmt(nowMs() - tonumber(ARGV[3])), '+inf')
local out = {}
for _, id in ipairs(live) do
  if id ~= ARGV[4] then out[#out + 1] = redis.call('HVALS', ARGV[1] .. ':pm:' .. id .. ':' .. ARGV[2]) end
end
return out
`

/** KEYS: instances. ARGV: prefix, ttl ms, own bus id. Each other live instance's `room, count, ...` list. */
export const LIST = `${HELPERS}
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. fmt(nowMs() - tonumber(ARGV[2])), '+inf')
local out = {}
for _, id in ipairs(live) do
  if id ~= ARGV[3] then out[#out + 1] = redis.call('HGETALL', ARGV[1] .. ':pc:' .. id) end
end
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
