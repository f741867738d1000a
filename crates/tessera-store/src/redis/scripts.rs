//! The Lua scripts that make multi-key updates atomic.
//!
//! Every script touches only keys of one hash tag (one user's route, or the
//! revocation list), so it runs unchanged on a Redis Cluster. Scripts that
//! walk a per-user index build the member keys from the index's own prefix
//! (`ARGV[1]`): those keys share the index's tag and therefore its slot.
//! Index entries whose session or family has expired are dropped as the
//! scripts come across them (no keyspace notifications, no `SCAN`).

use fred::types::scripts::Script;

// A session is one string (see `codec.rs`): byte 0 the layout, 1..17 the
// activity times, bytes 18..19 the length of the roles section that
// follows, then a length byte and the public handle. These helpers read and splice it.
const SESSION_LAYOUT: &str = r"
local function roles_end(v)
  return 19 + string.byte(v, 18) * 256 + string.byte(v, 19)
end
local function handle_of(v)
  local at = roles_end(v) + 1
  return string.sub(v, at, at + string.byte(v, at) % 128)
end
";

/// Postcard's integers: `varint(v, at)` reads an unsigned LEB128 varint at
/// byte `at` and returns it and the byte after it; `zigzag(z)` turns the
/// varint of a signed integer into its value.
const POSTCARD: &str = r"
local function varint(v, at)
  local n, scale = 0, 1
  while true do
    local b = string.byte(v, at)
    n = n + (b % 128) * scale
    at = at + 1
    if b < 128 then return n, at end
    scale = scale * 128
  end
end
local function zigzag(z)
  if z % 2 == 0 then return z / 2 end
  return -(z + 1) / 2
end
";

/// Reads a session's login time (ms) from the postcard part after the
/// handle: the user id (16 bytes), the e-mail (varint length, text), then
/// `created_at` (zigzag varint). Needs `roles_end` (`SESSION_LAYOUT`) and
/// `POSTCARD`.
const CREATED_AT: &str = r"
local function created_at(v)
  local at = roles_end(v) + 1
  at = at + 1 + string.byte(v, at) % 128 + 16
  local len
  len, at = varint(v, at)
  return zigzag((varint(v, at + len)))
end
";

/// Stores a session and adds it to its user's index, first ending the
/// user's oldest other sessions (by login time) beyond `cap - 1`. The index
/// holds at most `cap` entries plus stale ones, so while it has fewer than
/// `cap` nothing is read. Equal login times keep the index's order (a
/// comparison of binary members would follow the server's locale). KEYS: session, index. ARGV: value expires_at
/// absolute member now cap prefix channel. Returns the ended sessions as
/// member, value, member, value...
const CREATE_SESSION: &str = r"
local k, idx, cap, prefix = KEYS[1], KEYS[2], tonumber(ARGV[6]), ARGV[7]
redis.call('ZREMRANGEBYSCORE', idx, '-inf', ARGV[5])
local ended = {}
if redis.call('ZCARD', idx) >= cap then
  local live = {}
  for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    local v = redis.call('GET', prefix .. m)
    if not v then
      redis.call('ZREM', idx, m)
    elseif m ~= ARGV[4] then
      table.insert(live, {created_at(v), m, v, #live})
    end
  end
  if #live >= cap then
    table.sort(live, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[4] < b[4]
    end)
    for i = 1, #live - cap + 1 do
      local m = live[i][2]
      redis.call('DEL', prefix .. m)
      redis.call('ZREM', idx, m)
      redis.call('PUBLISH', ARGV[8], m)
      table.insert(ended, m)
      table.insert(ended, live[i][3])
    end
  end
end
redis.call('SET', k, ARGV[1], 'PXAT', ARGV[2])
redis.call('ZADD', idx, ARGV[3], ARGV[4])
if redis.call('PEXPIRETIME', idx) < tonumber(ARGV[3]) then redis.call('PEXPIREAT', idx, ARGV[3]) end
return ended
";

/// Records activity on a session that still exists.
/// KEYS: session. ARGV: times (16 bytes) expires_at channel member.
const TOUCH_SESSION: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SETRANGE', KEYS[1], 1, ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// Ends one session. KEYS: session. ARGV: channel member.
const DELETE_SESSION: &str = r"
local n = redis.call('DEL', KEYS[1])
if n == 1 then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return n
";

/// Replaces a session if it is still what the caller read (keeping its TTL).
/// KEYS: session. ARGV: old value, new value, channel, member.
/// Returns -1 if the session is gone, 0 if it changed meanwhile, 1 done.
const SWAP_SESSION: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// Whether a rotation to the successor already happened: the alias of the
/// old id names it, is within its window at `now`, and the successor lives.
/// An alias is the successor's member (its 32-byte id hash) followed by the
/// end of its window in decimal ms.
const ROTATED_TO: &str = r"
local function rotated_to(alias, new, member, now)
  local a = redis.call('GET', alias)
  return a ~= false and string.sub(a, 1, 32) == member and tonumber(string.sub(a, 33)) > now
    and redis.call('EXISTS', new) == 1
end
";

/// Replaces a session by its successor, in the store and the index, and
/// leaves the old id as an alias of the successor for the grace window.
/// A compare-and-set on the old session's value, so that a role change or
/// data merge made since the caller read it is not overwritten.
/// KEYS: old, new, index, alias (of old). ARGV: value expires_at absolute
/// old-member new-member channel expected-old-value now alias-until ('' for
/// no alias).
/// Returns 0 if the old session is gone (1 if it is gone because it was
/// rotated to this same successor), -1 if it changed meanwhile, 1 done.
const ROTATE_SESSION: &str = r"
local old, new, idx, alias = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cur = redis.call('GET', old)
if not cur then
  if rotated_to(alias, new, ARGV[5], tonumber(ARGV[8])) then return 1 end
  return 0
end
if cur ~= ARGV[7] then return -1 end
redis.call('DEL', old)
redis.call('PUBLISH', ARGV[6], ARGV[4])
redis.call('SET', new, ARGV[1], 'PXAT', ARGV[2])
redis.call('ZREM', idx, ARGV[4])
redis.call('ZADD', idx, ARGV[3], ARGV[5])
if ARGV[9] ~= '' then redis.call('SET', alias, ARGV[5] .. ARGV[9], 'PXAT', ARGV[9]) end
return 1
";

/// Whether the old id was already rotated to this successor (when the old
/// session was gone before the rotation script could run).
/// KEYS: alias (of old), new. ARGV: new-member now. Returns 1 or 0.
const ALREADY_ROTATED: &str = r"
if rotated_to(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])) then return 1 end
return 0
";

/// Follows an alias: its value and its successor's, or nil when either is
/// gone. KEYS: alias. ARGV: session key prefix (of the alias's route; the
/// successor shares it).
const RESOLVE_ALIAS: &str = r"
local a = redis.call('GET', KEYS[1])
if not a then return false end
local v = redis.call('GET', ARGV[1] .. string.sub(a, 1, 32))
if not v then return false end
return {a, v}
";

/// The user's live sessions as member, value, member, value...; drops stale
/// entries. KEYS: index. ARGV: member key prefix.
const LIST_SESSIONS: &str = r"
local idx, prefix = KEYS[1], ARGV[1]
local out = {}
for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local v = redis.call('GET', prefix .. m)
  if not v then
    redis.call('ZREM', idx, m)
  else
    table.insert(out, m)
    table.insert(out, v)
  end
end
return out
";

/// Ends the user's session with this handle. KEYS: index. ARGV: prefix
/// handle section (as `codec::handle_section` writes it) channel.
const DELETE_BY_HANDLE: &str = r"
local idx, prefix = KEYS[1], ARGV[1]
for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local v = redis.call('GET', prefix .. m)
  if not v then
    redis.call('ZREM', idx, m)
  elseif handle_of(v) == ARGV[2] then
    redis.call('DEL', prefix .. m)
    redis.call('ZREM', idx, m)
    redis.call('PUBLISH', ARGV[3], m)
    return 1
  end
end
return 0
";

/// Ends every member of a per-user index, and the index. Returns how many
/// members still existed. KEYS: index. ARGV: prefix [channel].
const DELETE_ALL: &str = r"
local idx, prefix = KEYS[1], ARGV[1]
local n = 0
for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local gone = redis.call('DEL', prefix .. m)
  if gone == 1 and ARGV[2] then redis.call('PUBLISH', ARGV[2], m) end
  n = n + gone
end
redis.call('DEL', idx)
return n
";

/// Rewrites a session with a new copy of its user: the roles section
/// (`ARGV` section: rotate flag, verified flag, roles) and the e-mail in the
/// postcard part after the handle (user id, 16 bytes, then the e-mail:
/// `ARGV` email, varint length and text, replacing the stored one). The
/// result is layout 2, whatever the layout it had (layout 1 differs only
/// in the roles section). Needs `SESSION_LAYOUT` and `POSTCARD`.
const WITH_USER_COPY: &str = r"
local function with_user_copy(v, section, email)
  local re = roles_end(v)
  local at = re + 1
  local user = at + 1 + string.byte(v, at) % 128
  local len, after = varint(v, user + 16)
  return string.char(2) .. string.sub(v, 2, 17) .. string.char(math.floor(#section / 256), #section % 256)
    .. section .. string.sub(v, re + 1, user + 15) .. email .. string.sub(v, after + len)
end
";

/// Sets the copy of the user (e-mail, roles, verified flag; see
/// `WITH_USER_COPY`) on every live session of the user and marks them for
/// rotation. KEYS: index. ARGV: prefix, roles section, e-mail field,
/// channel.
const SET_USER_COPY: &str = r"
local idx, prefix = KEYS[1], ARGV[1]
local n = 0
for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local k = prefix .. m
  local v = redis.call('GET', k)
  if v then
    redis.call('SET', k, with_user_copy(v, ARGV[2], ARGV[3]), 'KEEPTTL')
    redis.call('PUBLISH', ARGV[4], m)
    n = n + 1
  else
    redis.call('ZREM', idx, m)
  end
end
return n
";

/// Reads a family's login time (ms) from its `m` field, postcard of
/// e-mail (varint length, text), roles (varint count, then each as a
/// varint length and text) and `created_at` (zigzag varint). Needs
/// `POSTCARD`.
const FAMILY_CREATED_AT: &str = r"
local function family_created_at(meta)
  local len, at = varint(meta, 1)
  local count
  count, at = varint(meta, at + len)
  for _ = 1, count do
    len, at = varint(meta, at)
    at = at + len
  end
  return zigzag((varint(meta, at)))
end
";

/// Stores a refresh family and indexes it under its user, first ending the
/// user's oldest other families (by login time) beyond `cap - 1`. The index
/// is read only once it holds `cap` entries; equal login times keep the
/// index's order. KEYS: family, index. ARGV: u m g c p a expires_at member
/// now cap prefix. Returns the ended families as member, field list...
const CREATE_FAMILY: &str = r"
local k, idx, cap, prefix = KEYS[1], KEYS[2], tonumber(ARGV[10]), ARGV[11]
redis.call('ZREMRANGEBYSCORE', idx, '-inf', ARGV[9])
local ended = {}
if redis.call('ZCARD', idx) >= cap then
  local live = {}
  for i, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    local meta = redis.call('HGET', prefix .. m, 'm')
    if not meta then
      redis.call('ZREM', idx, m)
    elseif m ~= ARGV[8] then
      table.insert(live, {family_created_at(meta), i, m})
    end
  end
  if #live >= cap then
    table.sort(live, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2]
    end)
    for i = 1, #live - cap + 1 do
      local m = live[i][3]
      table.insert(ended, m)
      table.insert(ended, redis.call('HGETALL', prefix .. m))
      redis.call('DEL', prefix .. m)
      redis.call('ZREM', idx, m)
    end
  end
end
redis.call('DEL', k)
redis.call('HSET', k, 'u', ARGV[1], 'm', ARGV[2], 'g', ARGV[3], 'c', ARGV[4], 'a', ARGV[6])
if ARGV[5] ~= '' then redis.call('HSET', k, 'p', ARGV[5]) end
redis.call('PEXPIREAT', k, ARGV[7])
redis.call('ZREMRANGEBYSCORE', idx, '-inf', ARGV[9])
redis.call('ZADD', idx, ARGV[7], ARGV[8])
if redis.call('PEXPIRETIME', idx) < tonumber(ARGV[7]) then redis.call('PEXPIREAT', idx, ARGV[7]) end
return ended
";

/// Compare-and-set rotation of a family. KEYS: family. ARGV: generation new-hash now.
const ADVANCE_FAMILY: &str = r"
local k = KEYS[1]
if redis.call('HGET', k, 'g') ~= ARGV[1] then return 0 end
local current = redis.call('HGET', k, 'c')
redis.call('HSET', k, 'g', tostring(tonumber(ARGV[1]) + 1), 'p', current, 'c', ARGV[2], 'a', ARGV[3])
return 1
";

/// Ends every family of the user, returning them as member, field list...
/// KEYS: index. ARGV: prefix.
const TAKE_FAMILIES: &str = r"
local idx, prefix = KEYS[1], ARGV[1]
local out = {}
for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local fields = redis.call('HGETALL', prefix .. m)
  if #fields > 0 then
    table.insert(out, m)
    table.insert(out, fields)
    redis.call('DEL', prefix .. m)
  end
end
redis.call('DEL', idx)
return out
";

/// A user's families, read only (as `TAKE_FAMILIES`, deleting nothing).
/// KEYS: the user's family index. ARGV: the family key prefix.
const LIST_FAMILIES: &str = r"
local idx, prefix = KEYS[1], ARGV[1]
local out = {}
for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local fields = redis.call('HGETALL', prefix .. m)
  if #fields > 0 then
    table.insert(out, m)
    table.insert(out, fields)
  end
end
return out
";

/// Records a revocation and announces it on the channel. A per-user cutoff
/// (`U` or `B`) never moves back. KEYS: data, saved, until.
/// ARGV: id encoded until channel before ('' unless a cutoff).
const SAVE_REVOCATION: &str = r"
local data, saved, untl = KEYS[1], KEYS[2], KEYS[3]
if ARGV[5] ~= '' then
  local cur = redis.call('HGET', data, ARGV[1])
  if cur then
    local old = tonumber(string.match(cur, '^[UB] %-?%d+ (%-?%d+)'))
    if old and old > tonumber(ARGV[5]) then return 0 end
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', data, ARGV[1], ARGV[2])
redis.call('ZADD', saved, now, ARGV[1])
redis.call('ZADD', untl, ARGV[3], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[2])
return 1
";

/// Records an ended sealed session (an `S` entry) and announces it, keeping
/// its user within `cap` live ones: past it, the oldest (by login time,
/// the index's score) are dropped and collapsed into the user's `B` cutoff
/// (`through` the newest dropped login, never moving back, kept at least
/// `lifetime` past it), saved and announced in the same step. An entry the
/// cutoff already covers is not kept. Index members whose entry lapsed or
/// was purged are dropped once the index passes `cap`.
/// KEYS: data, saved, until, index. ARGV: id encoded until channel login
/// cap cutoff-id user lifetime-ms. Returns the encoded cutoff if it was set
/// or moved, else nil.
const SAVE_SEALED_REVOCATION: &str = r"
local data, saved, untl, idx = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cap = tonumber(ARGV[6])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local through, kept = nil, nil
local cur = redis.call('HGET', data, ARGV[7])
if cur then
  local u, th = string.match(cur, '^B (%-?%d+) (%-?%d+) ')
  if u and tonumber(u) > now then through, kept = tonumber(th), tonumber(u) end
end
if through and tonumber(ARGV[5]) <= through then return false end
local function drop(m)
  redis.call('HDEL', data, m)
  redis.call('ZREM', saved, m)
  redis.call('ZREM', untl, m)
  redis.call('ZREM', idx, m)
end
redis.call('HSET', data, ARGV[1], ARGV[2])
redis.call('ZADD', saved, now, ARGV[1])
redis.call('ZADD', untl, ARGV[3], ARGV[1])
redis.call('ZADD', idx, ARGV[5], ARGV[1])
redis.call('PUBLISH', ARGV[4], ARGV[2])
if redis.call('PEXPIRETIME', idx) < tonumber(ARGV[3]) then redis.call('PEXPIREAT', idx, ARGV[3]) end
local n = redis.call('ZCARD', idx)
if n <= cap then return false end
for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  local u = redis.call('ZSCORE', untl, m)
  if not u or tonumber(u) <= now then redis.call('ZREM', idx, m) end
end
if through then
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', idx, '-inf', through)) do drop(m) end
end
n = redis.call('ZCARD', idx)
if n <= cap then return false end
local newest = redis.call('ZRANGE', idx, n - cap - 1, n - cap - 1, 'WITHSCORES')
local th = tonumber(newest[2])
for _, m in ipairs(redis.call('ZRANGEBYSCORE', idx, '-inf', th)) do drop(m) end
local u = th + tonumber(ARGV[9])
if kept and kept > u then u = kept end
local out = 'B ' .. string.format('%d', u) .. ' ' .. string.format('%d', th) .. ' ' .. ARGV[8]
redis.call('HSET', data, ARGV[7], out)
redis.call('ZADD', saved, now, ARGV[7])
redis.call('ZADD', untl, u, ARGV[7])
redis.call('PUBLISH', ARGV[4], out)
return out
";

/// The encoded revocations, all or those saved since ARGV[1] (ms, '' = all).
/// KEYS: data, saved.
const LOAD_REVOCATIONS: &str = r"
local data, saved = KEYS[1], KEYS[2]
if ARGV[1] == '' then return redis.call('HVALS', data) end
local ids = redis.call('ZRANGEBYSCORE', saved, ARGV[1], '+inf')
local out = {}
for i = 1, #ids, 500 do
  local values = redis.call('HMGET', data, unpack(ids, i, math.min(i + 499, #ids)))
  for j = 1, #values do
    if values[j] then table.insert(out, values[j]) end
  end
end
return out
";

/// Forgets lapsed revocations. KEYS: data, saved, until. ARGV: now.
const PURGE_REVOCATIONS: &str = r"
local data, saved, untl = KEYS[1], KEYS[2], KEYS[3]
local ids = redis.call('ZRANGEBYSCORE', untl, '-inf', ARGV[1])
for _, id in ipairs(ids) do
  redis.call('HDEL', data, id)
  redis.call('ZREM', saved, id)
  redis.call('ZREM', untl, id)
end
return #ids
";

/// Takes a token from a login-throttling bucket, or says how many
/// milliseconds until one is available. KEYS: bucket. ARGV: burst
/// refill-interval-ms delta (-1 take, 1 give back).
const THROTTLE: &str = r"
local k = KEYS[1]
local burst, interval, delta = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', k, 'n', 't')
local tokens = burst
if state[1] then
  tokens = math.min(burst, tonumber(state[1]) + (now - tonumber(state[2])) / interval)
end
if delta < 0 and tokens < 1 then
  return math.ceil((1 - tokens) * interval)
end
tokens = math.min(burst, tokens + delta)
if tokens >= burst then
  redis.call('DEL', k)
else
  redis.call('HSET', k, 'n', tostring(tokens), 't', now)
  redis.call('PEXPIRE', k, math.ceil((burst - tokens) * interval))
end
return 0
";

/// The loaded scripts, created once per store.
#[derive(Debug, Clone)]
pub(crate) struct Scripts {
    pub create_session: Script,
    pub touch_session: Script,
    pub delete_session: Script,
    pub swap_session: Script,
    pub rotate_session: Script,
    pub already_rotated: Script,
    pub resolve_alias: Script,
    pub list_sessions: Script,
    pub delete_by_handle: Script,
    pub delete_all: Script,
    pub set_user_copy: Script,
    pub create_family: Script,
    pub advance_family: Script,
    pub take_families: Script,
    pub list_families: Script,
    pub save_revocation: Script,
    pub save_sealed_revocation: Script,
    pub load_revocations: Script,
    pub purge_revocations: Script,
    pub throttle: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            create_session: Script::from_lua(format!(
                "{SESSION_LAYOUT}{POSTCARD}{CREATED_AT}{CREATE_SESSION}"
            )),
            touch_session: Script::from_lua(TOUCH_SESSION),
            delete_session: Script::from_lua(DELETE_SESSION),
            swap_session: Script::from_lua(SWAP_SESSION),
            rotate_session: Script::from_lua(format!("{ROTATED_TO}{ROTATE_SESSION}")),
            already_rotated: Script::from_lua(format!("{ROTATED_TO}{ALREADY_ROTATED}")),
            resolve_alias: Script::from_lua(RESOLVE_ALIAS),
            list_sessions: Script::from_lua(LIST_SESSIONS),
            delete_by_handle: Script::from_lua(format!("{SESSION_LAYOUT}{DELETE_BY_HANDLE}")),
            delete_all: Script::from_lua(DELETE_ALL),
            set_user_copy: Script::from_lua(format!(
                "{SESSION_LAYOUT}{POSTCARD}{WITH_USER_COPY}{SET_USER_COPY}"
            )),
            create_family: Script::from_lua(format!(
                "{POSTCARD}{FAMILY_CREATED_AT}{CREATE_FAMILY}"
            )),
            advance_family: Script::from_lua(ADVANCE_FAMILY),
            take_families: Script::from_lua(TAKE_FAMILIES),
            list_families: Script::from_lua(LIST_FAMILIES),
            save_revocation: Script::from_lua(SAVE_REVOCATION),
            save_sealed_revocation: Script::from_lua(SAVE_SEALED_REVOCATION),
            load_revocations: Script::from_lua(LOAD_REVOCATIONS),
            purge_revocations: Script::from_lua(PURGE_REVOCATIONS),
            throttle: Script::from_lua(THROTTLE),
        }
    }
}
