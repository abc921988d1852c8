-- Add one attempt's cost to its tenant's day and its batch, and say whether that spent the
-- batch's budget. Run by agentq.spend.Spend.record when an attempt ends.
--
-- KEYS[1] the tenant's spend today (a float counter), KEYS[2] the batch's hash (absent for a
--   job of no batch).
-- ARGV[1] the attempt's cost in dollars, or '' when the price table had no price for a call,
--   ARGV[2] how long the day's counter is kept (seconds).
-- Returns {the batch's spend, its budget or '', 1 if this cost is the one that spent it}.
--
-- Why atomic: the spend is added, compared with the budget and the budget marked spent in one
-- step, so of attempts ending together exactly one is told it spent the budget (and ends the
-- batch's queued jobs). A batch whose hash has expired is not written again (no key without a
-- TTL is left behind).

local batch = KEYS[2]
if batch ~= nil and redis.call('EXISTS', batch) == 0 then
  batch = nil
end
if ARGV[1] == '' then
  -- An unknown cost adds nothing, and makes the batch's cost unknown.
  if batch ~= nil then
    redis.call('HINCRBY', batch, 'unpriced_attempts', 1)
  end
  return {'', '', 0}
end
redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if batch == nil then
  return {'', '', 0}
end
local spent = redis.call('HINCRBYFLOAT', batch, 'cost_usd', ARGV[1])
local budget = redis.call('HGET', batch, 'max_cost_usd')
if not budget or tonumber(spent) < tonumber(budget) then
  return {spent, budget or '', 0}
end
return {spent, budget, redis.call('HSETNX', batch, 'budget_spent', '1')}
