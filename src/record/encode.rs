//! The hot writer: a [`Record`] as one MessagePack map, written directly
//! (the same bytes as serde's named encoding, without its overhead).

use super::Record;

impl Record {
    /// Encodes the record as one MessagePack map (field names as keys).
    pub fn to_msgpack(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(192);
        self.write_msgpack(&mut buf);
        buf
    }

    /// Appends the record's MessagePack encoding to `buf`.
    ///
    /// The same bytes as serde's named encoding (`rmp_serde`), written
    /// directly: this runs once per record on the writer thread.
    pub fn write_msgpack(&self, buf: &mut Vec<u8>) {
        // No `..`: a field added to `Record` must be added here too.
        let Record {
            v,
            kind,
            ts,
            name,
            method,
            status,
            labels,
            weight,
            wall_ns,
            cpu_ns,
            instructions,
            cycles,
            page_faults,
            context_switches,
            rss_start,
            rss_end,
            peak_rss,
            polls,
            threads,
            source,
            scaled,
            cancelled,
            forced,
            error,
            pid,
            id,
            detail,
        } = self;
        let optional_counters = [
            ("cpu_ns", cpu_ns),
            ("instructions", instructions),
            ("cycles", cycles),
            ("page_faults", page_faults),
            ("context_switches", context_switches),
            ("rss_start", rss_start),
            ("rss_end", rss_end),
            ("peak_rss", peak_rss),
            ("polls", polls),
            ("threads", threads),
        ];
        let flags = [
            ("scaled", scaled),
            ("cancelled", cancelled),
            ("forced", forced),
        ];
        let len = 8
            + usize::from(method.is_some())
            + usize::from(status.is_some())
            + usize::from(!labels.is_empty())
            + optional_counters
                .iter()
                .filter(|(_, c)| c.is_some())
                .count()
            + flags.iter().filter(|(_, f)| **f).count()
            + usize::from(error.is_some())
            + usize::from(id.is_some())
            + usize::from(detail.is_some());
        let w = &mut msgpack::Writer(buf);
        w.map_len(len);
        w.uint("v", u64::from(*v));
        w.str("kind", kind.as_str());
        w.uint("ts", *ts);
        w.str("name", name);
        if let Some(method) = method {
            w.str("method", method);
        }
        if let Some(status) = status {
            w.uint("status", u64::from(*status));
        }
        if !labels.is_empty() {
            w.key("labels");
            w.map_len(labels.len());
            for (key, value) in labels.iter() {
                w.str(key, value);
            }
        }
        w.uint("weight", *weight);
        w.uint("wall_ns", *wall_ns);
        for (key, value) in &optional_counters[..] {
            if let Some(value) = value {
                w.uint(key, *value);
            }
        }
        w.str("source", source.as_str());
        for (key, flag) in flags {
            if *flag {
                w.bool(key, true);
            }
        }
        if let Some(error) = error {
            w.str("error", error);
        }
        w.uint("pid", u64::from(*pid));
        if let Some(id) = id {
            w.uint("id", *id);
        }
        if let Some(detail) = detail {
            w.key("detail");
            // Rare (status and profile records): serde's encoding.
            let _ = rmp_serde::encode::write_named(w.0, detail);
        }
    }
}

/// Direct MessagePack writing into a `Vec`, which cannot fail.
mod msgpack {
    pub(super) struct Writer<'a>(pub(super) &'a mut Vec<u8>);

    impl Writer<'_> {
        pub(super) fn map_len(&mut self, len: usize) {
            let _ = rmp::encode::write_map_len(self.0, len as u32);
        }
        pub(super) fn key(&mut self, key: &str) {
            let _ = rmp::encode::write_str(self.0, key);
        }
        pub(super) fn uint(&mut self, key: &str, value: u64) {
            self.key(key);
            let _ = rmp::encode::write_uint(self.0, value);
        }
        pub(super) fn str(&mut self, key: &str, value: &str) {
            self.key(key);
            let _ = rmp::encode::write_str(self.0, value);
        }
        pub(super) fn bool(&mut self, key: &str, value: bool) {
            self.key(key);
            let _ = rmp::encode::write_bool(self.0, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::ReadPath;
    use crate::record::{Detail, ProfileNode, RecordKind};

    /// The reference encoding: serde's, field names as keys.
    fn serde_encoding(r: &Record) -> Vec<u8> {
        let mut buf = Vec::new();
        rmp_serde::encode::write_named(&mut buf, r).unwrap();
        buf
    }

    #[test]
    fn direct_encoding_is_byte_for_byte_serde_s() {
        let bare = Record::new(RecordKind::Region, "bare");
        let mut full = Record::new(RecordKind::Request, "/users/{id}");
        full.method = Some("GET".into());
        full.status = Some(503);
        full.set_label("host", "web-1").set_label("é", "ü");
        full.weight = 1_000_000;
        full.wall_ns = u64::MAX;
        full.cpu_ns = Some(0);
        full.instructions = Some(127);
        full.cycles = Some(128);
        full.page_faults = Some(255);
        full.context_switches = Some(65_536);
        full.rss_start = Some(1 << 32);
        full.rss_end = Some(u64::from(u32::MAX));
        full.peak_rss = Some(300);
        full.polls = Some(1);
        full.threads = Some(2);
        full.source = ReadPath::Rdpmc;
        full.scaled = true;
        full.cancelled = true;
        full.forced = true;
        full.error = Some("boom".into());
        full.id = Some(u64::MAX - 1);
        let mut status = Record::new(RecordKind::Status, "dynostats");
        let mut detail = Detail::default();
        detail.counters.insert("instructions".into(), "ok".into());
        detail.stats.insert("records_accepted".into(), 5);
        detail
            .sinks
            .insert("memory".into(), [("records_written".to_string(), 4)].into());
        detail.errors.insert("file:/x".into(), "disk full".into());
        status.detail = Some(detail);
        let mut profile = Record::new(RecordKind::Profile, "/users/{id}");
        profile.id = Some(7);
        let mut detail = Detail {
            timer: Some("cpu_ns".into()),
            timer_requested: Some("instructions".into()),
            timer_fallback: Some("no hardware PMU (ENOENT)".into()),
            total: Some(1000),
            overhead: Some(-3),
            ..Detail::default()
        };
        detail.stats.insert("scopes".into(), 2);
        let root = ProfileNode {
            name: "/users/{id}".into(),
            calls: 1,
            inclusive: 1000,
            exclusive: 400,
            ..ProfileNode::default()
        };
        let mut child = root.clone();
        child.name = "db".into();
        child.parent = Some(0);
        child.recursive = true;
        child.exclusive = -1;
        detail.nodes = vec![root, child];
        profile.detail = Some(detail);
        let mut kinds = Vec::new();
        for kind in [RecordKind::Profile, RecordKind::Status] {
            kinds.push(Record::new(kind, "k"));
        }
        for r in [bare, full, status, profile].iter().chain(&kinds) {
            assert_eq!(r.to_msgpack(), serde_encoding(r), "{r:?}");
            assert_eq!(&Record::from_msgpack(&r.to_msgpack()).unwrap(), r);
        }
    }

    #[test]
    fn absent_counters_are_absent_keys() {
        let mut r = Record::new(RecordKind::Region, "x");
        r.instructions = Some(42);
        let bytes = r.to_msgpack();
        let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
        let keys: Vec<String> = v
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_str().unwrap().to_string())
            .collect();
        assert!(keys.contains(&"instructions".to_string()));
        assert!(!keys.contains(&"cycles".to_string()));
        assert!(!keys.contains(&"scaled".to_string()));
        assert_eq!(Record::from_msgpack(&bytes).unwrap(), r);
    }
}
