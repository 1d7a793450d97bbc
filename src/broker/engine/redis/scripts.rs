//! The Lua scripts that make each engine operation one atomic step in Redis.
//!
//! Every script touches the keys of one topic only (one hash slot on a Cluster), except
//! `REGISTER`, which touches the registry alone. The publish command for the channel is an
//! argument: `PUBLISH` on a single Redis, `SPUBLISH` (sharded, served by the topic's shard) on a
//! Cluster.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: registry. ARGV: name, max topics. 1: registered (or was), -1: the registry is full.
pub static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1",
    )
});

/// KEYS: meta. ARGV: epoch. 1: created, 0: it exists already.
pub static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', 0)
return 1",
    )
});

/// KEYS: meta, history, channel. ARGV: publish command. The deleted life's epoch, or nil.
pub static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return false end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call(ARGV[1], KEYS[3], 'D' .. epoch)
return epoch",
    )
});

/// KEYS: meta, history, channel. ARGV: frame head (up to the seq), frame tail (after it),
/// history size, publish command, history bytes per topic, bytes counted per entry besides its
/// frame. `{epoch, seq}`, or nil when the topic does not exist.
///
/// Seq, history entry and delivery happen in one step, so every node sees publications in seq
/// order and history never misses a delivered message. History keeps the newest entries
/// within the size and the bytes (the meta's `bytes` counts what it holds; a topic kept by an
/// older version, without that count, is counted once), always the newest one.
pub static PUBLISH: LazyLock<Script> = LazyLock::new(|| Script::new(PUBLISH_LUA));

/// The source of [`PUBLISH`], for sending it whole when Redis has lost its script cache.
pub const PUBLISH_LUA: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return false end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local frame = ARGV[1] .. seq .. ARGV[2]
local max_len, max_bytes, overhead = tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])
if max_len > 0 then
  if not redis.call('HGET', KEYS[1], 'bytes') then
    local counted = 0
    for _, entry in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
      counted = counted + #entry[2][2] + overhead
    end
    redis.call('HSET', KEYS[1], 'bytes', counted)
  end
  redis.call('XADD', KEYS[2], seq .. '-0', 'f', frame)
  local bytes = redis.call('HINCRBY', KEYS[1], 'bytes', #frame + overhead)
  local held = redis.call('XLEN', KEYS[2])
  while held > 1 and (held > max_len or bytes > max_bytes) do
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', KEYS[2], oldest[1])
    bytes = redis.call('HINCRBY', KEYS[1], 'bytes', -(#oldest[2][2] + overhead))
    held = held - 1
  end
end
redis.call(ARGV[4], KEYS[3], 'M' .. epoch .. ':' .. seq .. ':' .. frame)
return {epoch, seq}";

/// KEYS: meta, history. `{epoch, seq, held}`, or nil when the topic does not exist.
pub static INFO: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if not m[1] then return false end
return {m[1], tonumber(m[2]), redis.call('XLEN', KEYS[2])}",
    )
});

/// KEYS: meta, history. ARGV: mode (`none`, `last`, `after`, `range`), count, seq, epoch seen
/// (`''` for none). `{epoch, last seq, held, frames}` or nil when the topic does not exist.
///
/// - `last`: the newest `count` frames;
/// - `after`: every frame after `seq`, or all held when the position is from another life or
///   ahead of the topic (as [`super::super::memory::replay_start`] decides);
/// - `range`: at most `count` frames after `seq` (history reads and gap fills).
pub static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if not m[1] then return false end
local seq = tonumber(m[2])
local held = redis.call('XLEN', KEYS[2])
local mode = ARGV[1]
if mode == 'after' and ((ARGV[4] ~= '' and ARGV[4] ~= m[1]) or tonumber(ARGV[3]) > seq) then
  mode = 'all'
end
local raw = {}
if mode == 'last' and tonumber(ARGV[2]) > 0 then
  local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[2])
  for i = #newest, 1, -1 do raw[#raw + 1] = newest[i] end
elseif mode == 'after' then
  raw = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3] .. '-0', '+')
elseif mode == 'range' and tonumber(ARGV[2]) > 0 then
  raw = redis.call('XRANGE', KEYS[2], '(' .. ARGV[3] .. '-0', '+', 'COUNT', ARGV[2])
elseif mode == 'all' then
  raw = redis.call('XRANGE', KEYS[2], '-', '+')
end
local frames = {}
for i, entry in ipairs(raw) do frames[i] = entry[2][2] end
return {m[1], seq, held, frames}",
    )
});
