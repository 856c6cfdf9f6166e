//! Counters keyed by what clients send (addresses, accounts), in a map of fixed capacity.
//!
//! Guards against two attacks on in-memory counters. Memory exhaustion by key churn: a spray
//! of fresh keys (one try per address or per email) cannot grow the map past its capacity.
//! Erasure by flushing: when the map is full, it does not start afresh (which let a spray of
//! one-try keys reset a victim's nine failed logins to zero); it evicts the entries the
//! owner ranks least significant — the fewest failures, the most budget left, the oldest —
//! so a counter close to its limit outlives any number of one-try keys.

use std::collections::HashMap;
use std::hash::Hash;

/// A map that never holds more than its capacity. When a new key arrives while it is full,
/// the least significant eighth of the entries (at least one) is evicted in one pass, so
/// eviction costs O(1) per insert on average.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    entries: HashMap<K, V>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// A map of at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// `key`'s entry, made with `make` when absent. Making room first evicts the entries with
    /// the lowest `rank` (least significant first); returns the entry and how many others
    /// were evicted for it.
    pub fn entry<R: Ord>(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
        rank: impl Fn(&V) -> R,
    ) -> (&mut V, usize) {
        let evicted = self.make_room(&key, rank);
        (self.entries.entry(key).or_insert_with(make), evicted)
    }

    /// Inserts or replaces `key`'s value, evicting as [`Self::entry`] does; returns how many
    /// others were evicted.
    pub fn insert<R: Ord>(&mut self, key: K, value: V, rank: impl Fn(&V) -> R) -> usize {
        let evicted = self.make_room(&key, rank);
        self.entries.insert(key, value);
        evicted
    }

    fn make_room<R: Ord>(&mut self, key: &K, rank: impl Fn(&V) -> R) -> usize {
        if self.entries.len() < self.capacity || self.entries.contains_key(key) {
            return 0;
        }
        self.evict_least(rank)
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain(keep);
    }

    fn evict_least<R: Ord>(&mut self, rank: impl Fn(&V) -> R) -> usize {
        let count = (self.capacity / 8).max(1).min(self.entries.len());
        let mut ranked: Vec<(R, &K)> = self.entries.iter().map(|(k, v)| (rank(v), k)).collect();
        if count < ranked.len() {
            ranked.select_nth_unstable_by(count, |a, b| a.0.cmp(&b.0));
        }
        let doomed: Vec<K> = ranked
            .into_iter()
            .take(count)
            .map(|(_, k)| k.clone())
            .collect();
        for key in &doomed {
            self.entries.remove(key);
        }
        doomed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spray_of_fresh_keys_never_evicts_a_counter_near_its_limit() {
        let mut counts: BoundedMap<u64, u32> = BoundedMap::new(100);
        *counts.entry(0, || 0, |c| *c).0 = 9;
        let mut evicted = 0;
        for key in 1..=10_000 {
            let (count, gone) = counts.entry(key, || 0, |c| *c);
            *count += 1;
            evicted += gone;
        }
        assert!(counts.len() <= 100, "{} entries", counts.len());
        assert_eq!(counts.get(&0), Some(&9), "the victim's counter survived");
        assert!(evicted >= 9_900, "the spray evicted itself: {evicted}");
    }

    #[test]
    fn eviction_takes_an_eighth_of_the_least_significant() {
        let mut map: BoundedMap<u32, u32> = BoundedMap::new(16);
        for key in 0..16 {
            assert_eq!(map.insert(key, key, |v| *v), 0);
        }
        assert_eq!(map.insert(99, 99, |v| *v), 2, "16 / 8 evicted");
        assert_eq!(map.len(), 15);
        assert!(map.get(&0).is_none() && map.get(&1).is_none());
        assert!(map.get(&2).is_some() && map.get(&99).is_some());
        assert_eq!(map.insert(2, 0, |v| *v), 0, "replacing makes no room");
    }

    #[test]
    fn a_map_of_one_makes_room_for_the_next_key() {
        let mut map: BoundedMap<u32, u32> = BoundedMap::new(1);
        assert_eq!(map.insert(1, 1, |v| *v), 0);
        assert_eq!(map.insert(2, 2, |v| *v), 1, "the one entry went");
        assert_eq!(map.get(&2), Some(&2));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn retain_forgets_what_its_owner_no_longer_needs() {
        // The alert windows drop expired counters this way before evicting live ones.
        let mut map: BoundedMap<u32, u32> = BoundedMap::new(8);
        assert!(map.is_empty());
        for key in 0..8 {
            map.insert(key, key, |v| *v);
        }
        map.retain(|_, v| *v >= 6);
        assert_eq!(map.len(), 2);
        assert!(!map.is_empty());
        assert_eq!(map.capacity(), 8);
        assert_eq!(
            map.insert(0, 0, |v| *v),
            0,
            "room was made without evicting"
        );
    }
}
