//! Label filters: the `--label K=V` rule every reading of records shares.

use crate::record::Record;

/// Keeps records whose labels hold every `(key, value)` pair.
#[derive(Clone, Debug, Default)]
pub(crate) struct LabelFilters(Vec<(String, String)>);

impl LabelFilters {
    /// Adds the rule "label `key` is `value`".
    pub(crate) fn push(&mut self, key: &str, value: &str) {
        self.0.push((key.to_string(), value.to_string()));
    }

    /// Whether there is no rule (labels need not be decoded for them).
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `record` passes every rule.
    pub(crate) fn matches(&self, record: &Record) -> bool {
        self.0
            .iter()
            .all(|(k, v)| record.labels.get(k) == Some(v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_must_match() {
        let mut filters = LabelFilters::default();
        let mut r = Record::empty();
        assert!(filters.matches(&r), "no rule keeps everything");
        filters.push("build", "b1");
        filters.push("zone", "z");
        assert!(!filters.matches(&r));
        r.set_label("build", "b1");
        assert!(!filters.matches(&r), "one of two rules");
        r.set_label("zone", "z");
        assert!(filters.matches(&r));
        r.set_label("zone", "y");
        assert!(!filters.matches(&r));
    }
}
