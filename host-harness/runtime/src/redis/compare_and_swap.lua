-- The shared token store's compare-and-swap, run as it is by the Rust and the Node.js hosts.
-- KEYS[1] takes ARGV[2] (empty: is deleted) if it still holds ARGV[1] (empty: holds nothing),
-- with ARGV[3] milliseconds to live (empty: forever). 1 when swapped, else 0.
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '' then
  if current then return 0 end
elseif current ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
