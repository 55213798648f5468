"""The Lua scripts of the Redis store: each one atomic, all its keys in one hash slot.

Budget holds are a hash per subject and period, reservation id -> ``"<expiry ms> <usd>"``;
expiry is Redis' own clock (``TIME``: one clock for every replica), so a reservation whose
replica died stops counting at its expiry, and the next admission drops it.
"""

from __future__ import annotations

# Shared by the scripts below: now in ms, and the USD held (dropping expired holds if asked).
_HOLDS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function held(key, now, drop_expired)
  local total = 0
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    local expiry, amount = string.match(fields[i + 1], '^(%S+) (%S+)$')
    if tonumber(expiry) > now then
      total = total + tonumber(amount)
    elseif drop_expired then
      redis.call('HDEL', key, fields[i])
    end
  end
  return total
end
"""

# KEYS: requests this minute, tokens this minute, spend this period, holds this period.
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
  local holding = held(KEYS[4], now, true)
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
  redis.call('HSET', KEYS[4], ARGV[6], (now + tonumber(ARGV[7])) .. ' ' .. ARGV[5])
  redis.call('EXPIRE', KEYS[4], ARGV[8])
  return {'', tostring(requests), '0', ARGV[6]}
end
return {'', tostring(requests), '0', ''}
"""
)

# KEYS: tokens this minute, spend this period, the holds of the reservation's period.
# ARGV: tokens, USD, the minute's TTL (s), the period's TTL (s), reservation id ("" = none).
# Returns 1 when the reservation was still held.
SETTLE = """
local released = 0
if ARGV[5] ~= '' then released = redis.call('HDEL', KEYS[3], ARGV[5]) end
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('INCRBYFLOAT', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return released
"""

# KEYS: requests this minute, tokens this minute, spend this period, holds this period.
# Returns {requests, tokens, spend, USD held}, as strings ("" = none yet).
USAGE = (
    _HOLDS
    + """
return {
  redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '',
  redis.call('GET', KEYS[3]) or '', tostring(held(KEYS[4], now_ms(), false))
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
