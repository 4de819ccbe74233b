//! The mutations: each takes a valid fixture's text (and every fixture,
//! for those that splice two) and returns the bytes of a mutated file.
//! A fixed-seed generator picks them, so every run sees the same files.

use std::fmt::Write as _;

/// A mutation's name (in file names and failures) and its function.
pub type Mutation = (&'static str, fn(&mut Rng, &str, &[(String, String)]) -> Vec<u8>);

/// Cheap ones are listed several times: the heavy ones (thousands of
/// ports or addresses, long names) are about one file in forty.
pub const MUTATIONS: &[Mutation] = &[
    ("flip", flip),
    ("flip", flip),
    ("flip", flip),
    ("truncate", truncate),
    ("truncate", truncate),
    ("dup-line", duplicate_line),
    ("dup-line", duplicate_line),
    ("del-line", delete_line),
    ("del-line", delete_line),
    ("swap-lines", swap_lines),
    ("huge-number", huge_number),
    ("huge-number", huge_number),
    ("nesting", nesting),
    ("alias", alias),
    ("nul", nul),
    ("bom", bom),
    ("crlf", crlf),
    ("tab", tab),
    ("unicode", unicode),
    ("splice", splice),
    ("empty", empty),
    ("flip", flip),
    ("truncate", truncate),
    ("dup-line", duplicate_line),
    ("del-line", delete_line),
    ("huge-number", huge_number),
    ("nesting", nesting),
    ("alias", alias),
    ("flip", flip),
    ("truncate", truncate),
    ("del-line", delete_line),
    ("dup-line", duplicate_line),
    ("swap-lines", swap_lines),
    ("huge-number", huge_number),
    ("nul", nul),
    ("crlf", crlf),
    ("bom", bom),
    ("long-name", long_name),
    ("many-ports", many_ports),
    ("many-addresses", many_addresses),
];

/// splitmix64: small, fixed, the same on every platform and version.
pub struct Rng(u64);

// === impl Rng ===

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0), near enough for picking.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn flip(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(bytes.len());
        bytes[at] ^= 1 << rng.below(8);
    }
    bytes
}

fn truncate(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    text.as_bytes()[..rng.below(text.len())].to_vec()
}

fn duplicate_line(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let mut lines = lines(text);
    let at = rng.below(lines.len());
    lines.insert(at, lines[at]);
    lines.concat().into_bytes()
}

fn delete_line(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let mut lines = lines(text);
    lines.remove(rng.below(lines.len()));
    lines.concat().into_bytes()
}

fn swap_lines(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let mut lines = lines(text);
    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
    lines.swap(a, b);
    lines.concat().into_bytes()
}

/// One run of digits becomes a number no field holds.
fn huge_number(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let runs: Vec<(usize, usize)> = digit_runs(text);
    let Some(&(start, end)) = runs.get(rng.below(runs.len())) else {
        return text.as_bytes().to_vec();
    };
    let huge = rng.pick(&[
        "99999999999999999999999999999",
        "-2147483649",
        "4294967296",
        "18446744073709551616",
        "1e309",
        "-0",
        "0x7fffffff",
        "65536",
        "-1",
        ".inf",
    ]);
    format!("{}{huge}{}", &text[..start], &text[end..]).into_bytes()
}

fn digit_runs(text: &str) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                runs.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    runs
}

/// A value nested below and past the depth budget (100).
fn nesting(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let depth = rng.pick(&[20, 99, 100, 101, 500, 5000]);
    let value = if rng.below(2) == 0 {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    } else {
        format!("{}1{}", "{a: ".repeat(depth), "}".repeat(depth))
    };
    replace_value(rng, text, &value)
}

/// The value after the `: ` of a random line becomes `value`.
fn replace_value(rng: &mut Rng, text: &str, value: &str) -> Vec<u8> {
    let mut lines = lines(text);
    let candidates: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].contains(": ")).collect();
    let Some(&at) = candidates.get(rng.below(candidates.len())) else {
        return text.as_bytes().to_vec();
    };
    let key = lines[at].split(": ").next().unwrap_or_default();
    let line = format!("{key}: {value}\n");
    lines[at] = &line;
    lines.concat().into_bytes()
}

/// An anchor and aliases: one that stands for a field, or a small alias
/// bomb (within or past the budget).
fn alias(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    if rng.below(2) == 0 {
        let anchored = text.replacen("port: ", "port: &p ", 1);
        return anchored.replacen("port: ", "port: *p #", 2).into_bytes();
    }
    let levels = rng.pick(&[3, 6, 9]);
    let mut bomb = String::from("---\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..=levels {
        let refs = vec![format!("*a{}", level - 1); 10].join(", ");
        let _ = writeln!(bomb, "a{level}: &a{level} [{refs}]");
    }
    format!("{text}{bomb}").into_bytes()
}

fn nul(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.insert(rng.below(bytes.len() + 1), 0);
    bytes
}

fn bom(_: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    format!("\u{feff}{text}").into_bytes()
}

fn crlf(_: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    text.replace('\n', "\r\n").into_bytes()
}

fn tab(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let mut lines: Vec<String> = lines(text).into_iter().map(str::to_owned).collect();
    let at = rng.below(lines.len());
    lines[at] = lines[at].replacen("  ", "\t", 1);
    lines.concat().into_bytes()
}

fn unicode(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let mut out = text.to_owned();
    let mut at = rng.below(out.len() + 1);
    while !out.is_char_boundary(at) {
        at -= 1;
    }
    out.insert_str(at, rng.pick(&["é", "\u{2028}", "🦀", "\u{200b}", "\u{85}", "ｐort"]));
    out.into_bytes()
}

/// Two fixtures written one after the other without `---`.
fn splice(rng: &mut Rng, text: &str, all: &[(String, String)]) -> Vec<u8> {
    let other = &all[rng.below(all.len())].1;
    format!("{text}\n{other}").into_bytes()
}

fn empty(rng: &mut Rng, _: &str, _: &[(String, String)]) -> Vec<u8> {
    rng.pick(&["", "---", "---\n---\n", "null", "~", "[]", "{}", "\n\n", "- 1\n- 2\n"])
        .as_bytes()
        .to_vec()
}

fn long_name(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let length = rng.pick(&[63, 64, 253, 254, 10_000, 100_000]);
    text.replacen("name: ", &format!("name: {}", "a".repeat(length)), 1).into_bytes()
}

/// A Service of thousands of ports beside the fixture.
fn many_ports(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let count = 1000 + rng.below(7000);
    let mut doc = format!(
        "{text}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: many\nspec:\n  ports:\n"
    );
    for i in 1..=count {
        let _ = writeln!(doc, "  - {{name: p{i}, port: {i}}}");
    }
    doc.into_bytes()
}

/// Thousands of addresses: externalIPs, one EndpointSlice around its
/// bound, or one Endpoints object.
fn many_addresses(rng: &mut Rng, text: &str, _: &[(String, String)]) -> Vec<u8> {
    let count = rng.pick(&[999, 1000, 1001, 3000, 6000]);
    let ip = |i: usize| format!("127.1.{}.{}", i / 256, i % 256);
    let mut doc = format!("{text}\n---\n");
    match rng.below(3) {
        0 => {
            doc.push_str("apiVersion: v1\nkind: Service\nmetadata: {name: ips}\nspec:\n  ports: [{port: 80}]\n  externalIPs:\n");
            for i in 0..count {
                let _ = writeln!(doc, "  - {}", ip(i));
            }
        }
        1 => {
            doc.push_str("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: many, labels: {kubernetes.io/service-name: many}}\naddressType: IPv4\nports: [{port: 80}]\nendpoints:\n");
            for i in 0..count {
                let _ = writeln!(doc, "- addresses: [{}]", ip(i));
            }
        }
        _ => {
            doc.push_str("apiVersion: v1\nkind: Endpoints\nmetadata: {name: many}\nsubsets:\n- ports: [{port: 80}]\n  addresses:\n");
            for i in 0..count {
                let _ = writeln!(doc, "  - ip: {}", ip(i));
            }
        }
    }
    doc.into_bytes()
}
