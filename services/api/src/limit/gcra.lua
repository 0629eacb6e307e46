-- One GCRA step (limit/gcra.rs `step`), atomically, on Redis's clock so every replica agrees.
-- KEYS[1]: the bucket (its TAT, in microseconds). ARGV[1]: emission interval (µs). ARGV[2]: burst.
-- Answers {allowed (0/1), microseconds the TAT is ahead of now afterwards}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local capacity = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then
  tat = now
end
local next = tat + interval
if next - now > capacity then
  return {0, tat - now}
end
-- %d: Lua's default number formatting keeps 14 digits, too few for microseconds since 1970.
-- The key outlives its TAT by a millisecond: an expired bucket is a full one.
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.floor((next - now) / 1000) + 1)
return {1, next - now}
