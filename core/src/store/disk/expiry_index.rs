//! The DiskStore's in-memory index of entry expiries: which file names expire when, so that a sweep removes what
//! is due without reading every file. Entries that never expire are not indexed.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::super::NO_EXPIRY_MS;

#[derive(Default)]
pub(super) struct ExpiryIndex {
    by_time: BTreeMap<u64, HashSet<String>>,
    by_name: HashMap<String, u64>,
}

impl ExpiryIndex {
    pub(super) fn set(&mut self, name: &str, expires_at: u64) {
        self.remove(name);
        if expires_at >= NO_EXPIRY_MS {
            return;
        }
        self.by_time
            .entry(expires_at)
            .or_default()
            .insert(name.to_owned());
        self.by_name.insert(name.to_owned(), expires_at);
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Records a name known to be absent from the index (the full scan's merge): one allocation, no lookup.
    pub(super) fn insert_new(&mut self, name: String, expires_at: u64) {
        if expires_at >= NO_EXPIRY_MS {
            return;
        }
        self.by_time.entry(expires_at).or_default().insert(name.clone());
        self.by_name.insert(name, expires_at);
    }

    pub(super) fn remove(&mut self, name: &str) {
        if let Some(t) = self.by_name.remove(name) {
            if let Some(set) = self.by_time.get_mut(&t) {
                set.remove(name);
                if set.is_empty() {
                    self.by_time.remove(&t);
                }
            }
        }
    }

    /// Removes and returns the names whose expiry is before `now`.
    pub(super) fn drain_expired(&mut self, now: u64) -> Vec<String> {
        let later = self.by_time.split_off(&now);
        let expired = std::mem::replace(&mut self.by_time, later);
        let mut out = Vec::new();
        for (_, names) in expired {
            for n in names {
                self.by_name.remove(&n);
                out.push(n);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_drains_in_order() {
        let mut i = ExpiryIndex::default();
        i.set("a", 10);
        i.set("b", 20);
        i.set("c", NO_EXPIRY_MS);
        i.set("a", 30);
        assert_eq!(i.drain_expired(25), vec!["b".to_string()]);
        assert_eq!(i.drain_expired(31), vec!["a".to_string()]);
        assert!(i.by_name.is_empty());
    }
}
