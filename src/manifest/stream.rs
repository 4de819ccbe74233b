//! A file's documents decoded one at a time, as the parser reads them.
//!
//! serde-saphyr parses the documents of a text into a collection it makes
//! with `Default` and fills with `Extend`. A collection that kept the
//! trees would hold every tree of the file at once before the first object
//! is built (19 MB for a 2.7 MB file of slices); [`Decoding`] instead
//! decodes each tree as it arrives and frees it, so a file costs one
//! document's tree at a time. `Default` takes no arguments, so the file
//! and what has been decoded reach it through a thread-local.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;

use super::node::Node;
use super::yaml::{self, Invalid};
use super::{Error, Object, object};

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// The file being read and what its documents gave so far.
struct State {
    file: Arc<Path>,
    /// Documents decoded so far (empty ones are not counted).
    index: usize,
    objects: Vec<Object>,
    errors: Vec<Error>,
}

/// What the parser fills: each document is decoded on arrival.
#[derive(Default)]
struct Decoding;

impl Extend<Node> for Decoding {
    fn extend<I: IntoIterator<Item = Node>>(&mut self, nodes: I) {
        STATE.with_borrow_mut(|state| {
            let Some(state) = state else { return };
            for node in nodes {
                state.index += 1;
                let doc = object::Document { file: &state.file, index: state.index };
                if let Err(e) = object::decode(&doc, node, &mut state.objects) {
                    state.errors.push(e);
                }
            }
        });
    }
}

/// Adds the objects of every document of `text` (read from `file`) to
/// `objects`, and the documents that could not be read to `errors`;
/// nothing when the text is not YAML.
pub(crate) fn decode(
    file: &Path,
    text: &str,
    objects: &mut Vec<Object>,
    errors: &mut Vec<Error>,
) -> Result<(), Invalid> {
    // The vectors themselves move in and out (a copy of 200,000 objects
    // would briefly hold them twice).
    let first = objects.len();
    let state = State {
        file: Arc::from(file),
        index: 0,
        objects: std::mem::take(objects),
        errors: std::mem::take(errors),
    };
    STATE.set(Some(state));
    let parsed = yaml::documents::<Decoding>(text);
    // Taken whatever happened: a later file must not see this one's objects.
    if let Some(state) = STATE.take() {
        (*objects, *errors) = (state.objects, state.errors);
    }
    if parsed.is_err() {
        objects.truncate(first);
    }
    parsed.map(drop)
}
