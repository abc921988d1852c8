-- Book the next request slot of a rate shared by every process. Run by
-- agentq.ratelimit.RateLimiter.wait before each MCP request.
--
-- KEYS[1] the limiter (the time of its next free slot).
-- ARGV[1] the interval between requests, seconds.
-- Returns the seconds to wait, as a string: Lua numbers lose their fraction on the way out.
-- Redis's TIME is the clock, so processes on different hosts share one.
--
-- Why atomic: reading the next free slot and booking the one after are one step, so two
-- processes never book the same slot.

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local ttl_ms = math.ceil((slot + interval - now) * 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.6f', slot + interval), 'PX', ttl_ms)
return string.format('%.6f', slot - now)
