//! `svcproxy check` on generated hostile inputs: a 64 MiB file and a file
//! of 20,000 documents are rejected by their size or count, with one error
//! line, within the time budget and in bounded memory.

use std::fs;
use std::io::{BufWriter, Write as _};

use crate::support::{CHECK_BUDGET, check_with_peak_rss};

/// A small Service document padded to exactly 128 bytes.
fn padded_document(i: usize) -> String {
    let mut doc = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: s-{i}\nspec:\n  ports:\n    - port: 80\n"
    );
    let pad = 128 - doc.len() - 3;
    doc.push('#');
    doc.push_str(&" ".repeat(pad));
    doc.push_str("#\n");
    assert_eq!(doc.len(), 128);
    doc
}

#[test]
fn rejects_a_64_mib_file_by_its_size_without_reading_it() {
    const SIZE: usize = 64 << 20;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("huge.yaml");
    let mut chunk = String::with_capacity(1 << 20);
    for i in 0..(1 << 20) / 128 {
        chunk.push_str(&padded_document(i % 1000));
    }
    let mut writer = BufWriter::new(fs::File::create(&file).expect("create"));
    for _ in 0..SIZE / chunk.len() {
        writer.write_all(chunk.as_bytes()).expect("write");
    }
    writer.flush().expect("flush");
    drop(writer);
    assert_eq!(fs::metadata(&file).expect("stat").len(), SIZE as u64);

    let (out, peak_kib) = check_with_peak_rss([&file]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    let want =
        format!("{}: file is {SIZE} bytes, over the limit of {} bytes", file.display(), 16 << 20);
    assert_eq!(out.error_lines(), [want.as_str()], "{out}");
    out.assert_within(CHECK_BUDGET);
    // Far below the file's size: it was never read into memory.
    assert!(peak_kib < 32 * 1024, "peak RSS {peak_kib} KiB\n{out}");
}

#[test]
fn rejects_a_file_of_20000_documents_quickly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("storm.yaml");
    let mut writer = BufWriter::new(fs::File::create(&file).expect("create"));
    for i in 0..20_000 {
        writer.write_all(padded_document(i).as_bytes()).expect("write");
    }
    writer.flush().expect("flush");
    drop(writer);

    let (out, peak_kib) = check_with_peak_rss([&file]);
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{out}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "one error for the file, not one per document\n{out}");
    assert!(errors[0].starts_with(&format!("{}:", file.display())), "{out}");
    assert!(errors[0].contains("more than 10000 documents in one file"), "{out}");
    out.assert_within(CHECK_BUDGET);
    assert!(peak_kib < 128 * 1024, "peak RSS {peak_kib} KiB\n{out}");
}
