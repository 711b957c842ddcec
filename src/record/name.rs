//! [`Name`]: a record's short strings (its name, method and error) without
//! a heap allocation in the usual cases.
//!
//! A sampled region or request makes a record on the measured thread and
//! the pipeline's writer thread drops it: a `String` there is an allocation
//! on one thread freed on another, which with glibc's malloc means arena
//! lock traffic on the request path. A `Name` borrows a `&'static str`
//! (literals, method names, the layer's fixed names), copies a short one
//! (route templates, region names: up to [`Name::INLINE`] bytes) into the
//! record itself, and allocates only for longer ones.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use arrayvec::ArrayString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A string held by a record: static, inline or (when long) on the heap.
/// It reads as a `&str` (`Deref`, `as_str`, comparisons with `&str` and
/// `String`), serializes as a string, and says nothing of where it lives.
///
/// ```
/// use dynostats::record::Name;
///
/// let route = Name::new("/users/{id}");       // copied inline: no allocation
/// let method = Name::from_static("GET");      // borrowed
/// assert_eq!(route, "/users/{id}");
/// assert!(route.starts_with("/users"));
/// assert_eq!(method.as_str(), "GET");
/// assert_eq!(Name::new(&"x".repeat(100)).len(), 100); // long: on the heap
/// ```
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Inline(ArrayString<{ Name::INLINE }>),
    Heap(Box<str>),
}

impl Name {
    /// Longest string kept inside the record, in bytes.
    pub const INLINE: usize = 40;

    /// `s`, copied into the name (inline when it fits).
    #[inline]
    pub fn new(s: &str) -> Name {
        match ArrayString::from(s) {
            Ok(inline) => Name(Repr::Inline(inline)),
            Err(_) => Name(Repr::Heap(s.into())),
        }
    }

    /// `s`, borrowed for ever: no copy.
    pub const fn from_static(s: &'static str) -> Name {
        Name(Repr::Static(s))
    }

    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Inline(s) => s.as_str(),
            Repr::Heap(s) => s,
        }
    }

    /// Whether the string is on the heap (longer than [`Name::INLINE`] and
    /// not static).
    pub fn is_heap(&self) -> bool {
        matches!(self.0, Repr::Heap(_))
    }
}

impl Default for Name {
    fn default() -> Name {
        Name::from_static("")
    }
}

impl Deref for Name {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        if s.len() <= Self::INLINE {
            Name::new(&s)
        } else {
            Name(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl From<Name> for String {
    fn from(n: Name) -> String {
        n.as_str().to_string()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Name {}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, other: &Name) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        self == other.as_str()
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Name, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Name, E> {
                Ok(Name::new(s))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Name, E> {
                Ok(Name::from(s))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_its_string() {
        let long = "é".repeat(40); // 80 bytes
        for (name, heap) in [
            (Name::from_static("GET"), false),
            (Name::new("/users/{id}"), false),
            (Name::new(&"a".repeat(Name::INLINE)), false),
            (Name::new(&"a".repeat(Name::INLINE + 1)), true),
            (Name::from(long.clone()), true),
            (Name::default(), false),
        ] {
            assert_eq!(name.is_heap(), heap, "{name:?}");
            assert_eq!(name.clone(), name);
            assert_eq!(Name::new(&name), name);
        }
        assert_eq!(Name::from(long.clone()), long);
        assert_eq!(Name::new("é"), "é");
    }

    #[test]
    fn ordering_and_hashing_follow_the_string() {
        use std::collections::BTreeSet;
        let set: BTreeSet<Name> = ["b", "a", "c"].into_iter().map(Name::new).collect();
        let order: Vec<&str> = set.iter().map(Name::as_str).collect();
        assert_eq!(order, ["a", "b", "c"]);
        assert!(set.contains("b"));
    }
}
