//! `Map`: a replicated string-keyed map. Not in the original ConCoord; added because
//! a key-value store is the first thing users of a coordination service reach for
//! (configuration, service registration), and `concoord bench --workload put` uses
//! it. Keys are strings; values any `Value`. Bounded by `MAP_ENTRIES_MAX` and
//! `MAP_KEY_BYTES_MAX`, since every entry is replicated and snapshotted.

use crate::{ObjectError, Types, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most entries one map holds.
pub const MAP_ENTRIES_MAX: usize = 1_000_000;
/// Longest key, in bytes.
pub const MAP_KEY_BYTES_MAX: usize = 1_024;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Map {
    entries: BTreeMap<String, Value>,
}

#[concoord_object::object]
impl Map {
    #[concoord(constructor)]
    pub fn new() -> Map {
        Map::default()
    }

    /// Sets `key` to `value`; returns the previous value, or None.
    pub fn put(&mut self, key: String, value: Value) -> Result<Value, ObjectError> {
        if key.len() > MAP_KEY_BYTES_MAX {
            return Err(ObjectError::value_error(format!(
                "key of {} bytes is longer than {MAP_KEY_BYTES_MAX} bytes",
                key.len()
            )));
        }
        if self.entries.len() >= MAP_ENTRIES_MAX && !self.entries.contains_key(&key) {
            return Err(ObjectError::runtime_error(format!(
                "the map is full ({MAP_ENTRIES_MAX} entries)"
            )));
        }
        Ok(self.entries.insert(key, value).unwrap_or(Value::Nil))
    }

    /// The value of `key`, or None.
    pub fn get(&self, key: String) -> Value {
        self.entries.get(&key).cloned().unwrap_or(Value::Nil)
    }

    /// Removes `key`; returns whether it was there.
    pub fn delete(&mut self, key: String) -> bool {
        self.entries.remove(&key).is_some()
    }

    pub fn contains(&self, key: String) -> bool {
        self.entries.contains_key(&key)
    }

    pub fn size(&self) -> i64 {
        self.entries.len() as i64
    }

    /// The keys in order.
    pub fn keys(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }
}

pub fn register(types: &mut Types) {
    types.register::<Map>(&["concoord.object.map.Map"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete() {
        let mut m = Map::new();
        assert_eq!(m.put("a".into(), Value::Int(1)).unwrap(), Value::Nil);
        assert_eq!(m.put("a".into(), Value::Int(2)).unwrap(), Value::Int(1));
        assert_eq!(m.get("a".into()), Value::Int(2));
        assert_eq!(m.get("b".into()), Value::Nil);
        assert!(m.contains("a".into()));
        assert_eq!(m.size(), 1);
        assert!(m.delete("a".into()));
        assert!(!m.delete("a".into()));
        assert_eq!(m.keys(), Vec::<String>::new());
    }

    #[test]
    fn limits_are_errors() {
        let mut m = Map::new();
        let long = "k".repeat(MAP_KEY_BYTES_MAX + 1);
        assert_eq!(m.put(long, Value::Nil).unwrap_err().kind, "ValueError");
    }
}
