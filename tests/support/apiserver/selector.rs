//! `labelSelector` and `fieldSelector` as the API server reads them: terms
//! joined by commas (AND), each `key`, `!key`, `key=value`, `key==value` or
//! `key!=value` (labels), or `field=value`, `field==value`, `field!=value`
//! on `metadata.name` and `metadata.namespace` (fields). The set forms
//! (`in`, `notin`) are refused with 400 rather than misread.

use serde_json::Value;

use super::query;
use super::status::Status;

/// Both selectors of a request; an object passes when it matches both.
pub(super) struct Filter {
    labels: Vec<Term>,
    fields: Vec<Term>,
}

struct Term {
    key: String,
    op: Op,
}

enum Op {
    Exists,
    Absent,
    Equals(String),
    /// Matches an object without the key too.
    NotEquals(String),
}

// === impl Filter ===

impl Filter {
    /// The selectors of a query; 400 when one does not parse.
    pub(super) fn from_query(params: &[(String, String)]) -> Result<Filter, Status> {
        let labels = query::param(params, "labelSelector").unwrap_or_default();
        let labels = parse(labels).map_err(Status::bad_request)?;
        let fields = query::param(params, "fieldSelector").unwrap_or_default();
        let fields = parse(fields).map_err(Status::bad_request)?;
        if let Some(term) = fields.iter().find(|t| !matches!(t.key.as_str(), FIELD_NAME | FIELD_NS))
        {
            return Err(Status::bad_request(format!("field label not supported: {}", term.key)));
        }
        if fields.iter().any(|t| matches!(t.op, Op::Exists | Op::Absent)) {
            return Err(Status::bad_request("a field selector term needs an operator: = or !="));
        }
        Ok(Filter { labels, fields })
    }

    pub(super) fn matches(&self, object: &Value) -> bool {
        let meta = &object["metadata"];
        let labels = &meta["labels"];
        self.labels.iter().all(|t| t.matches(labels.get(&t.key).and_then(Value::as_str)))
            && self.fields.iter().all(|t| {
                let field = if t.key == FIELD_NAME { "name" } else { "namespace" };
                t.matches(meta.get(field).and_then(Value::as_str))
            })
    }
}

const FIELD_NAME: &str = "metadata.name";
const FIELD_NS: &str = "metadata.namespace";

// === impl Term ===

impl Term {
    fn matches(&self, value: Option<&str>) -> bool {
        match &self.op {
            Op::Exists => value.is_some(),
            Op::Absent => value.is_none(),
            Op::Equals(v) => value == Some(v.as_str()),
            Op::NotEquals(v) => value != Some(v.as_str()),
        }
    }
}

fn parse(text: &str) -> Result<Vec<Term>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    text.split(',').map(|t| term(t.trim()).ok_or_else(|| unparsable(t))).collect()
}

fn term(text: &str) -> Option<Term> {
    let (key, op) = if let Some(key) = text.strip_prefix('!') {
        (key, Op::Absent)
    } else if let Some((key, value)) = text.split_once("!=") {
        (key, Op::NotEquals(word(value)?.to_owned()))
    } else if let Some((key, value)) = text.split_once("==").or_else(|| text.split_once('=')) {
        (key, Op::Equals(word(value)?.to_owned()))
    } else {
        (text, Op::Exists)
    };
    let key = word(key).filter(|k| !k.is_empty())?;
    Some(Term { key: key.to_owned(), op })
}

/// A key or value: no spaces, parentheses or operators (those belong to
/// the set forms we do not support). A value may be empty.
fn word(text: &str) -> Option<&str> {
    let text = text.trim();
    let bad = |c: char| c.is_whitespace() || "()!=,".contains(c);
    (!text.contains(bad)).then_some(text)
}

fn unparsable(term: &str) -> String {
    format!(
        "unable to parse requirement: {term:?} (the fake API server reads key, !key, key=value, key==value, key!=value)"
    )
}
