-- Correct a model request's booking once its answer is in, and let the provider's word lower the
-- budget. Run by agentq.model_budget.ModelBudget.settle after each response (and each 429).
--
-- KEYS[1] the budget (hash, see model_budget_levels.lua).
-- ARGV[1] tokens per minute, ARGV[2] requests per minute (ours; 0: off).
-- ARGV[3] tokens to give back (the booking minus what the response's usage says was used;
-- negative when it used more), ARGV[4] requests to give back (1 when the provider refused it).
-- ARGV[5] tokens, ARGV[6] requests the provider says are left (x-ratelimit-remaining-*; -1:
-- not said), ARGV[7] and ARGV[8] its limits (x-ratelimit-limit-*; -1: not said), ARGV[9]
-- seconds the budget stays empty (a 429's wait; 0: none).
-- Returns the token level after, as a string. Redis's TIME is the clock.
--
-- The provider's figures only ever lower the budget: a level above what the provider says is
-- left drops to it (another client shares the key); a lower limit than ours is used instead of
-- ours until the provider announces another; after a 429 both levels are pulled below zero by
-- the wait's worth, so no process books again before it has passed.
--
-- Why atomic: the correction and the pull-down read and write the levels that take books from.

--#include model_budget_levels.lua

local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tpm, rpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local ptok, preq = tonumber(ARGV[7]), tonumber(ARGV[8])
if ptok >= 0 then
  if ptok > 0 and ptok < tpm then redis.call('HSET', KEYS[1], 'ptok', ptok)
  else redis.call('HDEL', KEYS[1], 'ptok') end
end
if preq >= 0 then
  if preq > 0 and preq < rpm then redis.call('HSET', KEYS[1], 'preq', preq)
  else redis.call('HDEL', KEYS[1], 'preq') end
end
local tok, req, ltok, lreq = model_budget_levels(KEYS[1], now, tpm, rpm)
tok = math.min(ltok, tok + tonumber(ARGV[3]))
req = math.min(lreq, req + tonumber(ARGV[4]))
local left_tok, left_req = tonumber(ARGV[5]), tonumber(ARGV[6])
if left_tok >= 0 and left_tok < tok then tok = left_tok end
if left_req >= 0 and left_req < req then req = left_req end
local hold = tonumber(ARGV[9])
if hold > 0 then
  tok = math.min(tok, -hold * ltok / 60)
  req = math.min(req, -hold * lreq / 60)
end
redis.call('HSET', KEYS[1], 'at', string.format('%.6f', now), 'tok', string.format('%.3f', tok),
  'req', string.format('%.6f', req))
return string.format('%.3f', tok)
