-- Book one model request and its estimated tokens against the budget every worker shares. Run
-- by agentq.model_budget.ModelBudget.take before each request to the model endpoint.
--
-- KEYS[1] the budget (hash, see model_budget_levels.lua).
-- ARGV[1] tokens per minute, ARGV[2] requests per minute (0: that limit is off), ARGV[3] the
-- request's estimated tokens.
-- Returns '0' if the request was booked, else the seconds until it would fit (nothing booked),
-- as a string: Lua numbers lose their fraction on the way out. Redis's TIME is the clock.
-- A request larger than the whole token bucket is booked once the bucket is full.
--
-- Why atomic: reading the levels and taking from them are one step, so two processes never
-- spend the same tokens.

--#include model_budget_levels.lua

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tpm, rpm, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tok, req, ltok, lreq = model_budget_levels(KEYS[1], now, tpm, rpm)
local wait = 0
if ltok > 0 then
  local need = math.min(cost, ltok)
  if tok < need then wait = (need - tok) * 60 / ltok end
end
if lreq > 0 and req < 1 then wait = math.max(wait, (1 - req) * 60 / lreq) end
if wait == 0 then
  tok = tok - cost
  req = req - 1
end
redis.call('HSET', KEYS[1], 'at', string.format('%.6f', now), 'tok', string.format('%.3f', tok),
  'req', string.format('%.6f', req))
return string.format('%.6f', wait)
