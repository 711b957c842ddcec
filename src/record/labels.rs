//! The one label rule: keys and values cut to [`Labels::MAX_LEN`] bytes at a
//! character boundary, at most [`Labels::MAX`] labels per record.
//!
//! Records, pipeline-wide labels and the tower layer's request labels all
//! go through [`Labels::insert`], so a record can never carry more, or
//! longer, labels than this.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Small user labels of a record (host, build, feature flags), bounded.
///
/// ```
/// use dynostats::record::Labels;
///
/// let mut labels = Labels::default();
/// assert!(labels.insert("build", "abc123"));
/// assert_eq!(labels.get("build"), Some("abc123"));
/// let long = "x".repeat(1000);
/// labels.insert("long", &long);
/// assert_eq!(labels.get("long").unwrap().len(), Labels::MAX_LEN);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    /// Longest label key or value, in bytes; longer ones are cut at a
    /// character boundary.
    pub const MAX_LEN: usize = 128;
    /// Most labels one record carries; more are ignored.
    pub const MAX: usize = 16;

    /// Adds (or replaces) a label, key and value cut to [`Labels::MAX_LEN`]
    /// bytes. Returns `false` when it was not added because [`Labels::MAX`]
    /// labels are already there.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        let key = truncate(key, Self::MAX_LEN);
        let value = truncate(value, Self::MAX_LEN);
        if let Some(v) = self.0.get_mut(key) {
            value.clone_into(v);
            return true;
        }
        if self.0.len() >= Self::MAX {
            return false;
        }
        self.0.insert(key.to_string(), value.to_string());
        true
    }

    /// Adds the labels of `other` whose keys are not here yet, within
    /// [`Labels::MAX`]: labels already set win.
    pub(crate) fn insert_missing(&mut self, other: &Labels) {
        for (key, value) in &other.0 {
            if self.0.len() >= Self::MAX {
                break;
            }
            if !self.0.contains_key(key) {
                self.0.insert(key.clone(), value.clone());
            }
        }
    }

    /// Removes every label, keeping nothing allocated that a reader
    /// reusing a record could not reuse anyway.
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels, ordered by key.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `s` cut to at most `max` bytes, at a character boundary: the one
/// truncation rule for names, labels and quoted collector replies.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn full_labels_still_replace_existing_keys() {
        let mut labels = Labels::default();
        for i in 0..Labels::MAX {
            assert!(labels.insert(&format!("k{i}"), "v"));
        }
        assert!(!labels.insert("one-more", "v"));
        assert!(labels.insert("k0", "new"));
        assert_eq!(labels.get("k0"), Some("new"));
        assert_eq!(labels.len(), Labels::MAX);
    }

    #[test]
    fn insert_missing_keeps_existing_values() {
        let mut record = Labels::default();
        record.insert("build", "mine");
        let mut pipeline = Labels::default();
        pipeline.insert("build", "theirs");
        pipeline.insert("host", "h1");
        record.insert_missing(&pipeline);
        assert_eq!(record.get("build"), Some("mine"));
        assert_eq!(record.get("host"), Some("h1"));
    }
}
