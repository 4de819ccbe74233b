//! Prometheus' text exposition, parsed: every sample with its labels, so a
//! test selects series by name and a subset of their labels, counts them
//! and reads their values, whatever order the labels are written in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use super::admin::Admin;

/// One sample line: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A whole `/metrics` answer.
#[derive(Clone, Debug)]
pub struct Exposition {
    pub text: String,
    pub samples: Vec<Sample>,
    /// `# TYPE` of each family.
    pub types: BTreeMap<String, String>,
}

// === impl Sample ===

impl Sample {
    /// True when every `(key, value)` of `labels` is one of the sample's.
    pub fn has(&self, labels: &[(&str, &str)]) -> bool {
        labels.iter().all(|(k, v)| self.labels.get(*k).is_some_and(|have| have == v))
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        write!(f, "{}{{{}}} {}", self.name, labels.join(","), self.value)
    }
}

// === impl Exposition ===

impl Exposition {
    /// Parses the text format (version 0.0.4).
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut samples = Vec::new();
        let mut types = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                if words.next() == Some("TYPE") {
                    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                        return Err(format!("line {}: bad TYPE line {line:?}", n + 1));
                    };
                    types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            samples.push(parse_sample(line).map_err(|e| format!("line {}: {e}: {line:?}", n + 1))?);
        }
        Ok(Exposition { text: text.to_owned(), samples, types })
    }

    /// `GET /metrics` from `admin`, parsed.
    pub fn scrape(admin: &Admin) -> io::Result<Exposition> {
        let text = admin.metrics()?;
        Exposition::parse(&text).map_err(io::Error::other)
    }

    /// The samples named `name` that carry every one of `labels`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name && s.has(labels))
    }

    /// The value of the one sample `name` with `labels`; `None` when there
    /// is none. Panics when the selector matches several (a test's mistake).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.select(name, labels);
        let first = found.next()?;
        if let Some(second) = found.next() {
            panic!("{name} {labels:?} matches several series: {first} and {second}");
        }
        Some(first.value)
    }

    /// [`Self::value`], panicking (with the exposition) when absent.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no series {name} {labels:?} in /metrics:\n{}", self.text))
    }

    /// How many samples `name` carry `labels`.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> usize {
        self.select(name, labels).count()
    }

    /// Every sample, of any family, that carries `labels`.
    pub fn with_labels<'a>(
        &'a self,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.has(labels))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let end = loop {
            // key
            let Some(&(start, c)) = chars.peek() else { return Err("unclosed {".into()) };
            if c == '}' {
                break start + 1;
            }
            if c == ',' {
                chars.next();
                continue;
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key}: value not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("label {key}: unterminated value")),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("dangling escape".into()),
                    },
                    Some((_, c)) => value.push(c),
                }
            }
            if labels.insert(key.trim().to_owned(), value).is_some() {
                return Err(format!("label {key} given twice"));
            }
        };
        rest = &inner[end..];
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    Ok(Sample { name, labels, value })
}
