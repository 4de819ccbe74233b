//! Text to YAML documents, under explicit budgets.
//!
//! Real manifests are small and shallow; hostile ones (alias bombs, deep
//! nesting, document storms) must fail fast with bounded memory. The budgets
//! below are sized for real clusters: a `kubectl get -o yaml` dump of 10,000
//! Services with their EndpointSlices fits, a billion-laughs file does not.

use serde_saphyr::{Budget, DuplicateKeyPolicy, Error, Options};

use super::node::Node;

/// Most documents (`---`) one file may hold; a `List` holds more objects.
pub const MAX_DOCUMENTS: usize = 10_000;
/// Deepest nesting of mappings and sequences; Kubernetes objects need ~20.
pub const MAX_DEPTH: usize = 100;

/// A file that is not valid YAML, or breaks a budget.
#[derive(Debug)]
pub(crate) struct Invalid {
    /// 1-based line of the fault, when the parser knows it.
    pub(crate) line: Option<u32>,
    pub(crate) message: String,
}

/// Parses every document of `text` into `C`, each as soon as it is read;
/// empty documents are dropped.
pub(crate) fn documents<C: Default + Extend<Node>>(text: &str) -> Result<C, Invalid> {
    serde_saphyr::from_str_multiple_with_options::<Node, C>(text, options()).map_err(|e| {
        let line = e.location().and_then(|l| u32::try_from(l.line()).ok()).filter(|l| *l > 0);
        Invalid { line, message: explain(&e) }
    })
}

/// The parser's error in a user's words: budgets name the limit, the
/// position (already printed in front) is dropped. Errors raised under a
/// `Spanned` reach us as messages, so budgets are recognised by their text.
fn explain(error: &Error) -> String {
    let text = match error {
        Error::AliasError { error, .. } => return explain(error),
        Error::Budget { breach, .. } => format!("budget breached: {breach:?}"),
        other => other.without_snippet().to_string(),
    };
    let first = text.lines().next().unwrap_or_default();
    let first = first.find(" at line ").map_or(first, |at| &first[..at]);
    let breach = first.strip_prefix("budget breached: ");
    match breach.and_then(|b| b.split([' ', '{']).next()) {
        Some("Documents") => format!(
            "more than {MAX_DOCUMENTS} documents in one file; \
             split the file or put the objects in a `kind: List`"
        ),
        Some("Depth") => format!("nested more than {MAX_DEPTH} levels deep"),
        Some(
            "Aliases"
            | "Anchors"
            | "AliasAnchorRatio"
            | "RecordedAnchorEvents"
            | "RecordedAnchorBytes",
        ) => ALIAS_BOMB.to_owned(),
        Some(other) => format!("over a YAML size limit ({other})"),
        None if first.contains("recursion limit") => {
            format!("nested more than {MAX_DEPTH} levels deep")
        }
        None if first.contains("alias") && first.contains("xceeded") => ALIAS_BOMB.to_owned(),
        None => first.to_owned(),
    }
}

const ALIAS_BOMB: &str = "too many YAML aliases expanded (an alias bomb?)";

fn options() -> Options {
    let mut budget = Budget::default();
    budget.max_documents = MAX_DOCUMENTS;
    budget.max_depth = MAX_DEPTH;
    budget.max_events = 8_000_000;
    budget.max_nodes = 4_000_000;
    budget.max_aliases = 10_000;
    budget.max_anchors = 10_000;
    budget.max_total_scalar_bytes = 32 << 20;
    budget.max_recorded_anchor_events = 100_000;
    budget.max_recorded_anchor_bytes = 4 << 20;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.alias_limits.max_total_replayed_events = 100_000;
    options
}
