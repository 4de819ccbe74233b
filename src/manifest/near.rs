//! Near misses: which known name a mistyped one was meant to be.

/// The name of `known` that `typed` most likely misspells: within two
/// edits (a swap of neighbours counts as one, case is ignored), and fewer
/// edits than half its length, so a short new name (`zone`) is not taken
/// for another short one (`name`). Ties go to the first of `known`.
pub(crate) fn nearest<'k>(typed: &str, known: &[&'k str]) -> Option<&'k str> {
    let typed: Vec<char> = typed.chars().flat_map(char::to_lowercase).collect();
    let mut best: Option<(usize, &'k str)> = None;
    for &name in known {
        let name_chars: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
        // Names whose lengths differ by more than two are more than two
        // edits apart; a very long name is no typo: skip the quadratic work.
        if name_chars.len().abs_diff(typed.len()) > 2 || typed.len() > 64 {
            continue;
        }
        let d = distance(&typed, &name_chars);
        if d <= 2 && 2 * d < typed.len() && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, name));
        }
    }
    best.map(|(_, name)| name)
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and swaps of two neighbours, one edit each.
fn distance(a: &[char], b: &[char]) -> usize {
    // Three rows: the one before last is needed for swaps.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    let mut row: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            row[j] = d;
        }
        std::mem::swap(&mut before, &mut last);
        std::mem::swap(&mut last, &mut row);
    }
    last[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_field_a_typo_misses() {
        let fields = ["appProtocol", "name", "nodePort", "port", "protocol", "targetPort"];
        assert_eq!(nearest("targetPrt", &fields), Some("targetPort"));
        assert_eq!(nearest("targetport", &fields), Some("targetPort"));
        assert_eq!(nearest("prot", &fields), Some("port"));
        assert_eq!(nearest("protcol", &fields), Some("protocol"));
        assert_eq!(nearest("fooBar", &fields), None);
        assert_eq!(nearest("zone", &fields), None, "two edits of a four-letter name: a new field");
    }

    #[test]
    fn finds_the_kind_a_typo_misses() {
        assert_eq!(nearest("Servce", &["Secret", "Service", "ServiceAccount"]), Some("Service"));
        assert_eq!(nearest("service", &["Service"]), Some("Service"));
        assert_eq!(nearest("Deployment", &["Service", "Pod"]), None);
    }
}
