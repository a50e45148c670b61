//! Interface names and indexes, kept between applies. Our workload routes name their veth; the
//! kernel speaks in indexes. Dumping every link at every apply made each CNI ADD cost as much
//! as the host's interfaces (a host with 1,000 containers has 1,000 veths). Here a name or
//! index not known yet is asked for alone, one request each, and all are dumped again only
//! when many are unknown or a write finds that a name now has another index.

use std::collections::{HashMap, HashSet};

/// Up to this many unknown names or indexes are asked for one by one; more, and all links are
/// dumped at once.
pub(crate) const ASK_ALONE: usize = 16;

/// What we know of the namespace's interfaces.
#[derive(Debug, Default)]
pub(crate) struct Links {
    by_index: HashMap<u32, String>,
    by_name: HashMap<String, u32>,
}

impl Links {
    pub fn name(&self, index: u32) -> Option<&str> {
        self.by_index.get(&index).map(String::as_str)
    }

    pub fn index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// Index to name, for reading routes back.
    pub fn names(&self) -> &HashMap<u32, String> {
        &self.by_index
    }

    /// Everything, from a dump: what was known before and is not in it is gone.
    pub fn replace_all(&mut self, all: Vec<(u32, String)>) {
        self.by_index.clear();
        self.by_name.clear();
        for (index, name) in all {
            self.learn(index, name);
        }
    }

    /// One interface as the kernel reported it; an older entry for either its index or its
    /// name (a veth deleted and made again under the same name) is dropped.
    pub fn learn(&mut self, index: u32, name: String) {
        if let Some(old) = self.by_name.insert(name.clone(), index) {
            if old != index {
                self.by_index.remove(&old);
            }
        }
        if let Some(old) = self.by_index.insert(index, name.clone()) {
            if old != name {
                self.by_name.remove(&old);
            }
        }
    }

    /// Keeps only the interfaces at `indexes` (those our routes point at): a veth whose
    /// container is gone is forgotten with its route, so what is kept does not grow with
    /// every container the host has ever had. A name needed later is asked for again.
    pub fn retain(&mut self, indexes: &HashSet<u32>) {
        self.by_index.retain(|index, _| indexes.contains(index));
        let by_index = &self.by_index;
        self.by_name.retain(|_, index| by_index.contains_key(index));
    }

    /// Forgets a name the kernel says is not there (any more).
    pub fn forget_name(&mut self, name: &str) {
        if let Some(index) = self.by_name.remove(name) {
            self.by_index.remove(&index);
        }
    }

    /// Forgets an index the kernel says is not there (any more).
    pub fn forget_index(&mut self, index: u32) {
        if let Some(name) = self.by_index.remove(&index) {
            self.by_name.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_made_again_with_a_new_index_replaces_the_old_entry() {
        let mut l = Links::default();
        l.learn(7, "tt1".into());
        l.learn(9, "tt1".into());
        assert_eq!(l.index("tt1"), Some(9));
        assert_eq!(l.name(7), None);
        assert_eq!(l.name(9), Some("tt1"));
        l.learn(9, "tt2".into());
        assert_eq!(l.index("tt1"), None);
        l.forget_index(9);
        assert_eq!(l.index("tt2"), None);
        l.replace_all(vec![(1, "lo".into())]);
        assert_eq!((l.index("lo"), l.name(9)), (Some(1), None));
    }

    #[test]
    fn what_no_route_points_at_is_forgotten() {
        let mut l = Links::default();
        for (i, name) in [(3, "tt3"), (4, "tt4"), (5, "tt5")] {
            l.learn(i, name.into());
        }
        l.retain(&[4].into());
        assert_eq!((l.index("tt3"), l.index("tt4"), l.name(5)), (None, Some(4), None));
        assert_eq!(l.names().len(), 1);
    }
}
