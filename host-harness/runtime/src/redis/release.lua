-- Releases the lock KEYS[1] only while it holds this holder's id ARGV[1]; run as it is by the
-- Rust and the Node.js hosts.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
