//! Label filters: the `--label K=V` rule every reading of records shares.

use crate::record::{IdText, Record};

/// Keeps records whose labels hold every `(key, value)` pair. The keys
/// `trace_id` and `span_id` match the record's fields of those names
/// (its label, for a record without the field): `--label
/// trace_id=ID` keeps the records of one trace.
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
        let mut id = IdText::default();
        self.0
            .iter()
            .all(|(k, v)| record.label_or_field(k, &mut id) == Some(v.as_str()))
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

    #[test]
    fn trace_and_span_ids_are_filter_keys() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let span = "00f067aa0ba902b7";
        let mut filters = LabelFilters::default();
        filters.push("trace_id", trace);
        let mut r = Record::empty();
        assert!(!filters.matches(&r));
        r.set_trace_context(crate::record::TraceContext::from_traceparent(
            format!("00-{trace}-{span}-01").as_bytes(),
        ));
        assert!(filters.matches(&r));
        filters.push("span_id", span);
        assert!(filters.matches(&r));
        filters.push("span_id", "00f067aa0ba902b8");
        assert!(!filters.matches(&r), "another span");
        // A record without the field: its label of that name, if any.
        let mut filters = LabelFilters::default();
        filters.push("trace_id", "t-1");
        let mut r = Record::empty();
        r.set_label("trace_id", "t-1");
        assert!(filters.matches(&r));
    }
}
