//! Strings that many model values repeat (namespaces, Service, port and
//! node names), allocated once and shared by every value that names them:
//! a cluster's 20,000 ports have a handful of distinct names, and a
//! Service, its EndpointSlices and its Routes share one copy of its id.

use std::sync::Arc;

use rustc_hash::FxHashSet;

/// The distinct strings of one model build.
#[derive(Debug, Default)]
pub(crate) struct Names(FxHashSet<Arc<str>>);

// === impl Names ===

impl Names {
    /// The shared copy of `text`.
    pub(crate) fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(name) = self.0.get(text) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(text);
        self.0.insert(name.clone());
        name
    }

    /// Forgets every name no kept value uses any more.
    pub(crate) fn retain_shared(&mut self) {
        self.0.retain(|name| Arc::strong_count(name) > 1);
    }

    /// The shared decimal text of `number` (unnamed ports are labelled by it).
    pub(crate) fn number(&mut self, number: u16) -> Arc<str> {
        let mut digits = [0u8; 5];
        let mut at = digits.len();
        let mut rest = number;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        // Only ASCII digits were written.
        self.get(std::str::from_utf8(&digits[at..]).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_distinct_text_is_allocated_once() {
        let mut names = Names::default();
        let (a, b) = (names.get("http"), names.get("http"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*names.get("grpc"), "grpc");
    }

    #[test]
    fn numbers_read_as_decimal() {
        let mut names = Names::default();
        for n in [0, 7, 80, 443, 8080, 65535] {
            assert_eq!(*names.number(n), n.to_string());
        }
        assert!(Arc::ptr_eq(&names.number(80), &names.get("80")));
    }
}
