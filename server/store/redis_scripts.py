"""The Lua scripts of the Redis store: each one atomic, all its keys in one hash slot.

Budget holds of a subject in a period are three keys: a hash (reservation id -> USD), a
sorted set (reservation id -> expiry, ms) and their running total (USD). An admission drops
the expired holds first (each once: amortized O(1)), so a reservation whose replica died
stops counting at its expiry. Expiry is Redis' own clock (``TIME``: one clock for every
replica). The total is reset when no hold is left, so float rounding never accumulates.
"""

from __future__ import annotations

# Shared by the scripts below: now in ms; drop the expired holds; release one hold.
# KEYS[h], KEYS[h+1], KEYS[h+2]: the holds' amounts, expiries and total.
_HOLDS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function release(h, id)
  local amount = redis.call('HGET', KEYS[h], id)
  if not amount then return 0 end
  redis.call('HDEL', KEYS[h], id)
  redis.call('ZREM', KEYS[h + 1], id)
  if redis.call('ZCARD', KEYS[h + 1]) == 0 then
    redis.call('DEL', KEYS[h + 2])
  else
    redis.call('INCRBYFLOAT', KEYS[h + 2], -tonumber(amount))
  end
  return 1
end
local function held(h, now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[h + 1], '-inf', now)) do
    release(h, id)
  end
  return math.max(0, tonumber(redis.call('GET', KEYS[h + 2]) or '0'))
end
"""

# KEYS: requests this minute, tokens this minute, spend this period, then the period's holds
# (amounts, expiries, total).
# ARGV: request limit, token limit, budget ("" = none), the minute keys' TTL (s),
#       USD to reserve ("0" = none), reservation id, hold (ms), the period keys' TTL (s).
# Returns {refused limit or "", counter, USD held, reservation id or ""}.
ADMIT = (
    _HOLDS
    + """
local spend = tonumber(redis.call('GET', KEYS[3]) or '0')
local reserve = tonumber(ARGV[5])
local now = 0
if ARGV[3] ~= '' then
  now = now_ms()
  local holding = held(4, now)
  local budget = tonumber(ARGV[3])
  if spend + holding >= budget or (reserve > 0 and spend + holding + reserve > budget) then
    return {'budget', tostring(spend), tostring(holding), ''}
  end
end
local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[2] ~= '' and tokens >= tonumber(ARGV[2]) then
  return {'tokens', tostring(tokens), '0', ''}
end
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
if ARGV[1] ~= '' and requests >= tonumber(ARGV[1]) then
  return {'requests', tostring(requests), '0', ''}
end
requests = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ARGV[3] ~= '' and reserve > 0 then
  redis.call('HSET', KEYS[4], ARGV[6], ARGV[5])
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[7]), ARGV[6])
  redis.call('INCRBYFLOAT', KEYS[6], ARGV[5])
  for i = 4, 6 do redis.call('EXPIRE', KEYS[i], ARGV[8]) end
  return {'', tostring(requests), '0', ARGV[6]}
end
return {'', tostring(requests), '0', ''}
"""
)

# KEYS: tokens this minute, spend this period, then the holds of the reservation's period.
# ARGV: tokens, USD, the minute's TTL (s), the period's TTL (s), reservation id ("" = none).
# Returns 1 when the reservation was still held.
SETTLE = (
    _HOLDS
    + """
local released = 0
if ARGV[5] ~= '' then released = release(3, ARGV[5]) end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('INCRBYFLOAT', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return released
"""
)

# KEYS: requests this minute, tokens this minute, spend this period, then the period's holds.
# Returns {requests, tokens, spend, USD held}, as strings ("" = none yet).
USAGE = (
    _HOLDS
    + """
local holding = held(4, now_ms())
return {
  redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '',
  redis.call('GET', KEYS[3]) or '', tostring(holding)
}
"""
)

# KEYS: a model's requests this minute, its tokens this minute.
# ARGV: request limit, token limit ("" = none), the tokens estimate, the keys' TTL (s).
# Returns "" when counted, else the refused limit.
MODEL_CAPACITY = """
if ARGV[1] ~= '' and tonumber(redis.call('GET', KEYS[1]) or '0') >= tonumber(ARGV[1]) then
  return 'requests'
end
local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
local estimate = tonumber(ARGV[3])
if ARGV[2] ~= '' then
  local limit = tonumber(ARGV[2])
  if tokens >= limit or (tokens > 0 and tokens + estimate > limit) then return 'tokens' end
end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('INCRBY', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return ''
"""

# KEYS: a model's tokens in a minute. ARGV: the correction. A key gone (its minute over, or
# never counted) is not recreated: it would have no TTL.
MODEL_TOKENS = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
return 0
"""
