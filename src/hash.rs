//! The hasher of graphvcr's internal maps (sessions index, id tables, match index):
//! foldhash, seeded at random per map. Every request hashes a handful of short keys
//! (ids, session names); SipHash was 3 % of a request's CPU. Seeded, so keys a bot
//! chooses cannot be aimed at one bucket in advance.

/// A `HashMap` with the fast hasher.
pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with the fast hasher.
pub type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
