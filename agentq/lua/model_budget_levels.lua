-- model_budget_levels(key, now, tpm, rpm): the model budget's token and request levels now, as
-- the limits refill them. Not a script of its own: model_budget_take and model_budget_settle
-- (agentq.model_budget.ModelBudget) include it with `--#include model_budget_levels.lua`.
--
-- key (agentq:limit:model-budget) is a hash: at (Redis time of the levels), tok and req (the
-- levels then), ptok and preq (the limits the provider last announced, when lower than ours).
-- Each bucket holds one minute's worth of its limit and refills continuously; a limit of 0 is
-- off (its level is not kept). A budget never seen before starts empty: agentq cannot know what
-- the key spent in the last minute, and the provider's headers may only lower the budget.
--
-- Returns tok, req, the token limit and the request limit in force (ours, or the provider's
-- when it announced a lower one).
--
-- Why atomic: the levels it reads are the ones the including script takes from or corrects,
-- in the same step, so no other process spends them in between.

local function model_budget_levels(key, now, tpm, rpm)
  local s = redis.call('HMGET', key, 'at', 'tok', 'req', 'ptok', 'preq')
  local ltok, lreq = tpm, rpm
  if s[4] and tonumber(s[4]) < ltok then ltok = tonumber(s[4]) end
  if s[5] and tonumber(s[5]) < lreq then lreq = tonumber(s[5]) end
  local at = tonumber(s[1])
  if not at then return 0, 0, ltok, lreq end
  local elapsed = math.max(0, now - at)
  local tok = math.min(ltok, (tonumber(s[2]) or 0) + elapsed * ltok / 60)
  local req = math.min(lreq, (tonumber(s[3]) or 0) + elapsed * lreq / 60)
  return tok, req, ltok, lreq
end
