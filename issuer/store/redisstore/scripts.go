package redisstore

import "github.com/redis/go-redis/v9"

// The write scripts share their calling convention: KEYS[1] is the entry, KEYS[2] the
// bucket's index; ARGV[1] is the entry's key within the bucket (the index member). A ttl
// argument is whole milliseconds, "0" for no expiry.

// indexAdd is the Lua head of the write scripts: index records ARGV[1] in the index with the
// expiry of a ttl just set (server time, so that no client clock is involved) and forgets
// members that expired more than a second ago; store sets the entry and indexes it.
const indexAdd = `
local function index(ttl)
	local t = redis.call('TIME')
	local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
	local score = '+inf'
	if tonumber(ttl) > 0 then
		score = string.format('%.0f', now + tonumber(ttl))
	end
	redis.call('ZADD', KEYS[2], score, ARGV[1])
	redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.0f', now - 1000))
end

-- store sets the entry to value with ttl (whole ms; 0: none, which also clears an earlier
-- TTL) and records it in the index.
local function store(value, ttl)
	if tonumber(ttl) > 0 then
		redis.call('SET', KEYS[1], value, 'PX', ttl)
	else
		redis.call('SET', KEYS[1], value)
	end
	index(ttl)
end
`

// putScript stores ARGV[2] with ttl ARGV[3]; a plain SET clears any earlier TTL.
var putScript = redis.NewScript(indexAdd + `
store(ARGV[2], ARGV[3])
return 1
`)

// createScript stores ARGV[2] with ttl ARGV[3] unless the entry exists; it returns 1 if it
// stored it, 0 if not.
var createScript = redis.NewScript(indexAdd + `
local ok
if tonumber(ARGV[3]) > 0 then
	ok = redis.call('SET', KEYS[1], ARGV[2], 'NX', 'PX', ARGV[3])
else
	ok = redis.call('SET', KEYS[1], ARGV[2], 'NX')
end
if not ok then
	return 0
end
index(ARGV[3])
return 1
`)

// takeScript returns the entry and deletes it, or returns nil.
var takeScript = redis.NewScript(`
local v = redis.call('GETDEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return v
`)

// deleteScript deletes the entry.
var deleteScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// incrScript adds ARGV[3] to the counter and returns it, never below zero. Only a new
// counter gets the ttl ARGV[2], so later increments do not move the end of its window. A
// value that is not a counter gives an error starting with NOTCOUNTER.
var incrScript = redis.NewScript(indexAdd + `
local new = redis.call('EXISTS', KEYS[1]) == 0
local n = redis.pcall('INCRBY', KEYS[1], ARGV[3])
if type(n) == 'table' and n.err then
	return redis.error_reply('NOTCOUNTER ' .. n.err)
end
if n < 0 then
	redis.call('SET', KEYS[1], '0', 'KEEPTTL')
	n = 0
end
if new then
	if tonumber(ARGV[2]) > 0 then
		redis.call('PEXPIRE', KEYS[1], ARGV[2])
	end
	index(ARGV[2])
end
return n
`)

// casScript is the write half of Update, a compare-and-swap: it writes only if the entry is
// still what Update read — absent when ARGV[2] is "absent", else equal, byte for byte, to
// ARGV[6] — so that any write in between, by any client, makes it return 0 and Update read
// again. It then deletes the entry when ARGV[3] is "delete", or stores ARGV[4] with ttl
// ARGV[5], and returns 1.
var casScript = redis.NewScript(indexAdd + `
local cur = redis.call('GET', KEYS[1])
if ARGV[2] == 'absent' then
	if cur then return 0 end
elseif not cur or cur ~= ARGV[6] then
	return 0
end
if ARGV[3] == 'delete' then
	redis.call('DEL', KEYS[1])
	redis.call('ZREM', KEYS[2], ARGV[1])
	return 1
end
store(ARGV[4], ARGV[5])
return 1
`)
