//! `records::parse_records`: line rules, JSONL extraction and every kind of malformed line, and
//! chunking: feeding an input in chunks of every size (carrying the unconsumed tail, as the
//! caller does) gives the same rows, line numbers, errors and counts as one call.
//! `records::fill_rows`: the same rows, cut into batches in caller-owned arenas of any size.

use dtesn_core::records::{
    fill_rows, parse_records, Format, RecordError, Records, RowArena, Scratch, Stop, MAX_DEPTH,
};

fn jsonl(field: &str) -> Format {
    Format::Jsonl {
        field: field.to_string(),
    }
}

fn run(input: &[u8], format: &Format, is_last: bool) -> Records {
    let mut r = Records::new();
    parse_records(input, format, is_last, &mut r);
    check_invariants(&r);
    r
}

fn check_invariants(r: &Records) {
    assert_eq!(r.offsets.first(), Some(&0));
    assert_eq!(r.offsets.len(), r.lines.len() + 1);
    assert_eq!(*r.offsets.last().unwrap() as usize, r.bytes.len());
    assert!(r.offsets.windows(2).all(|w| w[0] <= w[1]));
    assert!(r.lines.windows(2).all(|w| w[0] < w[1]));
    assert!(r.lines.iter().all(|&l| l < r.line_count));
    assert!(r.errors.iter().all(|e| e.line < r.line_count));
    assert_eq!(
        r.lines.len() + r.errors.len() + r.blank as usize,
        r.line_count as usize
    );
}

fn rows(r: &Records) -> Vec<String> {
    (0..r.len())
        .map(|i| String::from_utf8(r.row(i).to_vec()).expect("rows are UTF-8 here"))
        .collect()
}

/// One JSONL line alone: Ok(row) or Err(message).
fn one(line: &str, field: &str) -> Result<String, String> {
    let r = run(line.as_bytes(), &jsonl(field), true);
    assert_eq!(r.line_count, 1, "{line:?}");
    match (r.len(), r.errors.as_slice()) {
        (1, []) => Ok(String::from_utf8(r.row(0).to_vec()).unwrap()),
        (0, [e]) => Err(e.message.clone()),
        _ => panic!("{line:?}: {} rows, {:?}", r.len(), r.errors),
    }
}

fn err(line: &str) -> String {
    one(line, "text").expect_err(line)
}

#[test]
fn lines_basic_rules() {
    let r = run(b"a\nbb\r\n\nccc", &Format::Lines, true);
    assert_eq!(rows(&r), ["a", "bb", "", "ccc"]);
    assert_eq!(r.lines, [0, 1, 2, 3]);
    assert_eq!((r.consumed, r.line_count, r.blank), (10, 4, 0));
    assert!(r.errors.is_empty());

    // A file ending in '\n' has no extra empty line.
    let r = run(b"a\nb\n", &Format::Lines, true);
    assert_eq!(rows(&r), ["a", "b"]);
    assert_eq!(r.consumed, 4);

    // Empty input, and only newlines.
    let r = run(b"", &Format::Lines, true);
    assert_eq!((r.len(), r.line_count, r.consumed), (0, 0, 0));
    assert_eq!(r.offsets, [0]);
    let r = run(b"\n\n\r\n", &Format::Lines, true);
    assert_eq!(rows(&r), ["", "", ""]);

    // Only one trailing '\r' is stripped; a '\r' elsewhere stays; a lone "\r" line is empty.
    let r = run(b"a\r\r\nb\rc\n\r\n\r", &Format::Lines, true);
    assert_eq!(rows(&r), ["a\r", "b\rc", "", ""]);

    // Bytes pass through unchecked (vectorizeBytes decodes them).
    let r = run(b"\xff\xfe\n\xe2\x82", &Format::Lines, true);
    assert_eq!(r.row(0), b"\xff\xfe");
    assert_eq!(r.row(1), b"\xe2\x82");
}

#[test]
fn tail_is_not_consumed_unless_last() {
    let r = run(b"a\nb\r\ncc", &Format::Lines, false);
    assert_eq!(rows(&r), ["a", "b"]);
    assert_eq!((r.consumed, r.line_count), (5, 2));

    // No '\n' at all: nothing is consumed.
    let r = run(b"abc", &Format::Lines, false);
    assert_eq!((r.len(), r.consumed, r.line_count), (0, 0, 0));
    let r = run(b"{\"text\":\"x\"}", &jsonl("text"), false);
    assert_eq!((r.len(), r.consumed, r.line_count), (0, 0, 0));

    // A trailing '\r' without its '\n' is part of the tail.
    let r = run(b"a\r", &Format::Lines, false);
    assert_eq!(r.consumed, 0);
    let r = run(b"a\r", &Format::Lines, true);
    assert_eq!(rows(&r), ["a"]);
}

#[test]
fn records_are_reused_and_cleared() {
    let mut r = Records::new();
    parse_records(b"{\"t\":\"one\"}\nbad\n\n", &jsonl("t"), true, &mut r);
    assert_eq!((r.len(), r.errors.len(), r.blank), (1, 1, 1));
    parse_records(b"x\ny", &Format::Lines, true, &mut r);
    check_invariants(&r);
    assert_eq!(rows(&r), ["x", "y"]);
    assert!(r.errors.is_empty());
    assert_eq!(r.blank, 0);
}

#[test]
fn jsonl_rows_blank_lines_and_line_numbers() {
    let input = b"{\"text\":\"a\"}\n\n   \n\t \r\n{\"id\":1,\"text\":\"b\"}\r\n  {\"text\" : \"c\" }  \n{\"text\":\"d\"}";
    let r = run(input, &jsonl("text"), true);
    assert_eq!(rows(&r), ["a", "b", "c", "d"]);
    assert_eq!(r.lines, [0, 4, 5, 6]);
    assert_eq!((r.blank, r.line_count), (3, 7));
    assert!(r.errors.is_empty());

    // A blank last line without '\n'.
    let r = run(b"{\"text\":\"a\"}\n  ", &jsonl("text"), true);
    assert_eq!((r.len(), r.blank, r.line_count), (1, 1, 2));

    // Other JSON whitespace in the middle of a line; '\r' too (it is JSON whitespace).
    assert_eq!(one("{\r\"text\"\t:\r\"x\"}", "text").unwrap(), "x");

    // Non-JSON whitespace is not blank (JSON.parse refuses it too).
    assert!(err("\u{a0}").starts_with("invalid JSON"));
    assert!(err("\u{b}").starts_with("invalid JSON"));
}

#[test]
fn jsonl_values_and_keys() {
    assert_eq!(one(r#"{"text":""}"#, "text").unwrap(), "");
    assert_eq!(one(r#"{}"#, "text").unwrap_err(), "field 'text' is missing");
    assert_eq!(
        one(r#"{"a":{"text":"nested"},"b":[{"text":"x"}]}"#, "text").unwrap_err(),
        "field 'text' is missing"
    );
    assert_eq!(
        one(r#"{"a":1,"text":"x","b":[1,{"c":null}],"d":true}"#, "text").unwrap(),
        "x"
    );
    assert_eq!(one(r#"{"text":"x","other":"y"}"#, "other").unwrap(), "y");
    // Empty and non-ASCII field names; keys are compared unescaped.
    assert_eq!(one(r#"{"":"empty"}"#, "").unwrap(), "empty");
    assert_eq!(one(r#"{"texte":"é"}"#, "texte").unwrap(), "é");
    assert_eq!(one(r#"{"t\u00e9xt":"x"}"#, "téxt").unwrap(), "x");
    assert_eq!(one(r#"{"te\u0078t":"x"}"#, "text").unwrap(), "x");
    assert_eq!(one(r#"{"te\"xt":"x"}"#, "te\"xt").unwrap(), "x");
    // The last duplicate wins, as in JSON.parse.
    assert_eq!(one(r#"{"text":"a","text":"b"}"#, "text").unwrap(), "b");
    assert_eq!(one(r#"{"text":1,"text":"b"}"#, "text").unwrap(), "b");
    assert_eq!(
        one(r#"{"text":"a","text":null}"#, "text").unwrap_err(),
        "field 'text' is null, not a string"
    );
    // Raw UTF-8 passes through.
    assert_eq!(
        one("{\"text\":\"wörld 😀 中文\"}", "text").unwrap(),
        "wörld 😀 中文"
    );
    // Long values (past the parser's 32-byte SIMD blocks) with and without escapes.
    let long = "abcdefghij".repeat(50);
    assert_eq!(
        one(&format!("{{\"text\":\"{long}\"}}"), "text").unwrap(),
        long
    );
    assert_eq!(
        one(&format!("{{\"text\":\"{long}\\n{long}\"}}"), "text").unwrap(),
        format!("{long}\n{long}")
    );
}

#[test]
fn jsonl_escapes() {
    let esc = |s: &str| one(&format!("{{\"text\":\"{s}\"}}"), "text");
    assert_eq!(esc(r#"\"\\\/\b\f\n\r\t"#).unwrap(), "\"\\/\u{8}\u{c}\n\r\t");
    assert_eq!(
        esc(r#"caf\u00e9 \u00E9 \u4e2d \u0000"#).unwrap(),
        "café é 中 \u{0}"
    );
    // Surrogate pairs are joined.
    assert_eq!(esc(r#"\ud83d\ude00"#).unwrap(), "😀");
    assert_eq!(esc(r#"\uD83D\uDE00x"#).unwrap(), "😀x");
    // Lone surrogates become U+FFFD, and what follows a lone high one is read on its own.
    assert_eq!(esc(r#"\ud800"#).unwrap(), "\u{FFFD}");
    assert_eq!(esc(r#"\udc00"#).unwrap(), "\u{FFFD}");
    assert_eq!(esc(r#"a\ud800b"#).unwrap(), "a\u{FFFD}b");
    assert_eq!(esc(r#"\ud800\u0041"#).unwrap(), "\u{FFFD}A");
    assert_eq!(esc(r#"\ud800\ud83d\ude00"#).unwrap(), "\u{FFFD}😀");
    assert_eq!(esc(r#"\ude00\ud83d"#).unwrap(), "\u{FFFD}\u{FFFD}");
    assert_eq!(esc(r#"\ud800\n"#).unwrap(), "\u{FFFD}\n");
    assert_eq!(esc(r#"\ud800\\ude00"#).unwrap(), "\u{FFFD}\\ude00");
    // Keys with lone surrogates do not stop the line.
    assert_eq!(one(r#"{"\ud800":1,"text":"ok"}"#, "text").unwrap(), "ok");
    assert_eq!(one(r#"{"\ud800":"v"}"#, "\u{FFFD}").unwrap(), "v");
    // Lone surrogates elsewhere are fine.
    assert_eq!(
        one(r#"{"a":"\udfff","b":["\ud800"],"text":"ok"}"#, "text").unwrap(),
        "ok"
    );
}

#[test]
fn jsonl_ill_formed_utf8_is_replaced_like_textdecoder() {
    // One U+FFFD per maximal subpart (String::from_utf8_lossy follows the same rule).
    for bad in [
        &b"\xff"[..],
        b"\xe2\x82",
        b"\xed\xa0\x80",
        b"\xf0\x9f\x98",
        b"\xc0\xaf",
        b"a\x80b",
    ] {
        let mut line = b"{\"text\":\"<".to_vec();
        line.extend_from_slice(bad);
        line.extend_from_slice(b">\"}");
        let r = run(&line, &jsonl("text"), true);
        assert_eq!(r.len(), 1, "{bad:?}: {:?}", r.errors);
        assert_eq!(
            r.row(0),
            format!("<{}>", String::from_utf8_lossy(bad)).as_bytes()
        );
    }
    // In another value, in a key, and in a later line after valid ones.
    let r = run(b"{\"text\":\"a\"}\n{\"x\":\"\xff\",\"\xfe\":1,\"text\":\"b\"}\n{\"text\":\"c\xff\"}\n{\"text\":\"d\"}", &jsonl("text"), true);
    assert_eq!(rows(&r), ["a", "b", "c\u{FFFD}", "d"]);
    // Outside strings it is invalid JSON, as it is for JSON.parse after TextDecoder.
    let r = run(b"{\"text\":\"a\"\xff}", &jsonl("text"), true);
    assert_eq!(r.errors.len(), 1);
    assert!(
        r.errors[0].message.starts_with("invalid JSON"),
        "{:?}",
        r.errors
    );
    // Rows are always well-formed UTF-8.
    assert!(std::str::from_utf8(&r.bytes).is_ok());
}

#[test]
fn jsonl_malformed_lines() {
    // Not an object (validated first, so what it is can be named).
    assert_eq!(err("[1,2]"), "line is an array, not an object");
    assert_eq!(err("\"text\""), "line is a string, not an object");
    assert_eq!(err("12.5e3"), "line is a number, not an object");
    assert_eq!(err("-0"), "line is a number, not an object");
    assert_eq!(err(" true "), "line is a boolean, not an object");
    assert_eq!(err("null"), "line is null, not an object");
    // The field is there but not a string.
    assert_eq!(
        err(r#"{"text":5}"#),
        "field 'text' is a number, not a string"
    );
    assert_eq!(
        err(r#"{"text":-1.5e-3}"#),
        "field 'text' is a number, not a string"
    );
    assert_eq!(
        err(r#"{"text":null}"#),
        "field 'text' is null, not a string"
    );
    assert_eq!(
        err(r#"{"text":false}"#),
        "field 'text' is a boolean, not a string"
    );
    assert_eq!(
        err(r#"{"text":{"a":"b"}}"#),
        "field 'text' is an object, not a string"
    );
    assert_eq!(
        err(r#"{"text":["a"]}"#),
        "field 'text' is an array, not a string"
    );
    assert_eq!(err(r#"{"id":1}"#), "field 'text' is missing");

    // Invalid JSON of every kind: the message names the problem and its column.
    let invalid = [
        (r#"{"text":"abc"#, "invalid JSON: EOF while parsing at column 12"),
        (r#"{"text":"abc""#, "invalid JSON: EOF while parsing at column 13"),
        (r#"{"text":"abc","#, "invalid JSON: EOF while parsing at column 14"),
        (r#"{"text""#, "invalid JSON: EOF while parsing at column 7"),
        ("{", "invalid JSON: EOF while parsing at column 1"),
        ("[1,2", "invalid JSON: EOF while parsing at column 4"),
        (r#"{"text":"a",}"#, "invalid JSON: expected this character to be '\"' or '}' at column 13"),
        (r#"{"text":"a"} x"#, "invalid JSON: JSON has non-whitespace trailing characters after the value at column 14"),
        (r#"{"text":"a"}}"#, "invalid JSON: JSON has non-whitespace trailing characters after the value at column 13"),
        (r#"{"text":"a"}{"text":"b"}"#, "invalid JSON: JSON has non-whitespace trailing characters after the value at column 13"),
        (r#"[1] 2"#, "invalid JSON: JSON has non-whitespace trailing characters after the value at column 5"),
        (r#"{"text" "a"}"#, "invalid JSON: expected this character to be a ':' while parsing at column 9"),
        (r#"{"text":"a" "b":1}"#, "invalid JSON: expected this character to be either a ',' or a '}' while parsing at column 13"),
        (r#"{text:"a"}"#, "invalid JSON: expected this character to be '\"' or '}' at column 2"),
        (r#"{'text':'a'}"#, "invalid JSON: expected this character to be '\"' or '}' at column 2"),
        (r#"{"a":tru,"text":"x"}"#, ""),
        (r#"{"a":nul}"#, ""),
        (r#"{"a":01,"text":"x"}"#, ""),
        (r#"{"a":1.,"text":"x"}"#, ""),
        (r#"{"a":-,"text":"x"}"#, ""),
        (r#"{"a":1e,"text":"x"}"#, ""),
        (r#"{"a":+1,"text":"x"}"#, ""),
        (r#"{"a":.5,"text":"x"}"#, ""),
        (r#"{"a":NaN,"text":"x"}"#, ""),
        (r#"{"a":Infinity,"text":"x"}"#, ""),
        (r#"{"a":[1,],"text":"x"}"#, ""),
        (r#"{"a":[1 2],"text":"x"}"#, ""),
        (r#"{"a":{"b":1,},"text":"x"}"#, ""),
        (r#"{"a":undefined}"#, ""),
        ("{\"text\":\"a\tb\"}", "invalid JSON: control character found while parsing a string at column 11"),
        ("{\"x\":\"a\u{1}b\",\"text\":\"ok\"}", ""),
        (r#"{"text":"\x"}"#, ""),
        (r#"{"text":"\'"}"#, ""),
        (r#"{"x":"\a","text":"ok"}"#, ""),
        // \u escapes: bad hex in the field, in a skipped value, in a nested value, in a key.
        (r#"{"text":"\uZZZZ"}"#, ""),
        (r#"{"text":"\u12"}"#, ""),
        (r#"{"x":"a\uZZZZb","text":"ok"}"#, "invalid JSON: invalid \\u escape (4 hex digits expected) at column 8"),
        (r#"{"x":"\u12","text":"ok"}"#, ""),
        (r#"{"x":["\u00g0"],"text":"ok"}"#, "invalid JSON: invalid \\u escape (4 hex digits expected) at column 8"),
        (r#"{"text":"a","text":"\u-123"}"#, ""),
        (r#"{"te\uXt":"ok"}"#, ""),
        (r#"["\uqqqq"]"#, ""),
        ("\"\\u12\"", ""),
        (r#"{"text":"a\"#, ""),
        (r#"{"text":"a\\"#, ""),
        ("{,}", ""),
        ("{:}", ""),
        ("}", ""),
        ("]", ""),
        ("x", ""),
        ("{\"text\":\"a\"}\u{feff}", ""),
        ("\u{feff}{\"text\":\"a\"}", ""),
    ];
    for (line, expected) in invalid {
        let got = err(line);
        assert!(got.starts_with("invalid JSON: "), "{line:?} gave {got:?}");
        assert!(got.contains(" at column "), "{line:?} gave {got:?}");
        if !expected.is_empty() {
            assert_eq!(got, expected, "{line:?}");
        }
    }
}

#[test]
fn jsonl_nesting_depth() {
    let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    // Up to MAX_DEPTH levels (the top-level object is one of them) are fine.
    let ok = format!("{{\"a\":{},\"text\":\"ok\"}}", nest(MAX_DEPTH - 1));
    // Unoptimized sonic-rs uses tens of KiB of stack per level (release: about 128 bytes), so
    // debug test builds get a big (lazily committed) stack.
    let deep = std::thread::Builder::new()
        .stack_size(if cfg!(debug_assertions) {
            1 << 30
        } else {
            4 << 20
        })
        .spawn(move || {
            let fine = one(&ok, "text");
            let too_deep = one(
                &format!("{{\"a\":{},\"text\":\"ok\"}}", nest(MAX_DEPTH)),
                "text",
            );
            let top = one(&nest(MAX_DEPTH + 1), "text");
            let truncated = one(&"[{\"a\":".repeat(100_000), "text");
            // Brackets inside strings do not count.
            let in_strings = one(
                &format!("{{\"a\":\"{}\",\"text\":\"ok\"}}", "[{".repeat(5000)),
                "text",
            );
            (fine, too_deep, top, truncated, in_strings)
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!(deep.0.as_deref(), Ok("ok"));
    let msg = format!("arrays and objects nested deeper than {MAX_DEPTH} levels are not supported");
    assert!(
        deep.1.as_ref().unwrap_err().starts_with(&msg),
        "{:?}",
        deep.1
    );
    assert!(
        deep.2.as_ref().unwrap_err().starts_with(&msg),
        "{:?}",
        deep.2
    );
    assert!(
        deep.3.as_ref().unwrap_err().starts_with(&msg),
        "{:?}",
        deep.3
    );
    assert_eq!(deep.4.as_deref(), Ok("ok"));
}

/// Feeds `input` in chunks of `size` the way `vectorizeFile` does (carrying the unconsumed tail in
/// front of the next chunk) and merges the results with line numbers made global.
fn chunked(
    input: &[u8],
    format: &Format,
    size: usize,
) -> (Vec<Vec<u8>>, Vec<u32>, Vec<RecordError>, u32, u32) {
    let (mut rows, mut lines, mut errors, mut blank, mut base) =
        (Vec::new(), Vec::new(), Vec::new(), 0u32, 0u32);
    let mut r = Records::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut pos = 0;
    loop {
        let next = (pos + size).min(input.len());
        carry.extend_from_slice(&input[pos..next]);
        pos = next;
        let is_last = pos == input.len();
        parse_records(&carry, format, is_last, &mut r);
        check_invariants(&r);
        for i in 0..r.len() {
            rows.push(r.row(i).to_vec());
            lines.push(base + r.lines[i]);
        }
        errors.extend(r.errors.iter().map(|e| RecordError {
            line: base + e.line,
            message: e.message.clone(),
        }));
        blank += r.blank;
        base += r.line_count;
        if is_last {
            assert_eq!(r.consumed, carry.len());
            return (rows, lines, errors, blank, base);
        }
        carry.drain(..r.consumed);
    }
}

#[test]
fn every_chunk_size_gives_the_same_rows() {
    let lines_input: &[u8] = b"first\r\n\nsecond line\n\r\nw\xc3\xb6rld \xf0\x9f\x98\x80\nbad \xff\xe2\x82 bytes\r\nno newline at end";
    let jsonl_input: &[u8] = b"{\"text\":\"a\"}\r\n\n  \n{\"text\":\"caf\\u00e9 \\ud83d\\ude00 w\xc3\xb6rld\",\"n\":[1,2,{\"k\":null}]}\n\
        {\"text\":5}\n[1]\n{\"nope\":\"x\"}\n{\"text\":\"trunc\n{\"x\":\"\xff\",\"text\":\"\\ud800 lone\"}\r\n\t\r\n{\"text\":\"last\"}";
    for (input, format) in [
        (lines_input, Format::Lines),
        (jsonl_input, jsonl("text")),
        (jsonl_input, Format::Lines),
    ] {
        let whole = run(input, &format, true);
        let expect_rows: Vec<Vec<u8>> = (0..whole.len()).map(|i| whole.row(i).to_vec()).collect();
        for size in 1..=input.len() {
            let (rows, lines, errors, blank, count) = chunked(input, &format, size);
            assert_eq!(rows, expect_rows, "chunk size {size}");
            assert_eq!(lines, whole.lines, "chunk size {size}");
            assert_eq!(errors, whole.errors, "chunk size {size}");
            assert_eq!(
                (blank, count),
                (whole.blank, whole.line_count),
                "chunk size {size}"
            );
        }
    }
    // The JSONL sample has every outcome once or more.
    let r = run(jsonl_input, &jsonl("text"), true);
    assert_eq!(rows(&r), ["a", "café 😀 wörld", "\u{FFFD} lone", "last"]);
    assert_eq!(r.lines, [0, 3, 8, 10]);
    assert_eq!(r.blank, 3);
    let messages: Vec<(u32, &str)> = r
        .errors
        .iter()
        .map(|e| (e.line, e.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (4, "field 'text' is a number, not a string"),
            (5, "line is an array, not an object"),
            (6, "field 'text' is missing"),
            (7, "invalid JSON: EOF while parsing at column 14"),
        ]
    );
}

/// What `fill_rows` gave, driven the way `vectorizeFile` drives it: reads of `chunk` bytes (the
/// unconsumed tail carried), batches of `batch` rows, an arena that starts with `bytes_cap` bytes
/// and `rows_cap` rows and grows when `fill_rows` says it is full.
struct FillRun {
    /// Each batch's rows and their line numbers (1-based, as passed through `first_line`).
    batches: Vec<(Vec<Vec<u8>>, Vec<u32>)>,
    /// 0-based global line of each error.
    errors: Vec<RecordError>,
    blank: u32,
    line_count: u32,
    /// With `stop_at_error`: input bytes consumed when it stopped.
    stopped_at: Option<usize>,
}

fn fill_run(
    input: &[u8],
    format: &Format,
    chunk: usize,
    batch: usize,
    (bytes_cap, rows_cap): (usize, usize),
    stop_at_error: bool,
) -> FillRun {
    let mut out = FillRun {
        batches: Vec::new(),
        errors: Vec::new(),
        blank: 0,
        line_count: 0,
        stopped_at: None,
    };
    let (mut bytes, mut offsets, mut lines) = (
        vec![0u8; bytes_cap],
        vec![0u32; rows_cap + 1],
        vec![0u32; rows_cap],
    );
    let mut rows = 0usize;
    let (mut errors, mut scratch) = (Vec::new(), Scratch::new());
    let flush = |out: &mut FillRun, bytes: &[u8], offsets: &[u32], lines: &[u32], rows: usize| {
        let texts = (0..rows)
            .map(|i| bytes[offsets[i] as usize..offsets[i + 1] as usize].to_vec())
            .collect();
        out.batches.push((texts, lines[..rows].to_vec()));
    };
    let (mut buf, mut base, mut read) = (Vec::new(), 0usize, 0usize);
    loop {
        let next = (read + chunk).min(input.len());
        buf.extend_from_slice(&input[read..next]);
        read = next;
        let is_last = read == input.len();
        let mut pos = 0;
        loop {
            let mut arena = RowArena {
                bytes: &mut bytes,
                offsets: &mut offsets,
                lines: &mut lines,
                rows,
            };
            let f = fill_rows(
                &buf[pos..],
                format,
                is_last,
                out.line_count + 1,
                batch - rows,
                stop_at_error,
                usize::MAX,
                &mut arena,
                &mut errors,
                &mut scratch,
            );
            rows = arena.rows;
            assert!(f.consumed <= buf.len() - pos);
            assert_eq!(f.stop == Stop::Bytes, f.need > 0 || (f.stop == Stop::Bytes));
            out.errors.extend(errors.iter().map(|e| RecordError {
                line: out.line_count + e.line,
                message: e.message.clone(),
            }));
            out.blank += f.blank;
            out.line_count += f.line_count;
            pos += f.consumed;
            match f.stop {
                Stop::Input => break,
                Stop::Rows if rows == batch => {
                    flush(&mut out, &bytes, &offsets, &lines, rows);
                    rows = 0;
                }
                Stop::Rows => {
                    assert_eq!(
                        rows,
                        lines.len(),
                        "Rows before the batch is full: the arena is"
                    );
                    let cap = (2 * lines.len()).min(batch);
                    offsets.resize(cap + 1, 0);
                    lines.resize(cap, 0);
                }
                Stop::Bytes => {
                    let used = offsets[rows] as usize;
                    assert!(used + f.need > bytes.len(), "Bytes although the row fits");
                    bytes.resize((2 * bytes.len()).max(used + f.need), 0);
                }
                Stop::Error => {
                    assert!(stop_at_error);
                    out.stopped_at = Some(base + pos);
                    if rows > 0 {
                        flush(&mut out, &bytes, &offsets, &lines, rows);
                    }
                    return out;
                }
                Stop::Errors => unreachable!("no error limit here"),
            }
        }
        if is_last {
            assert_eq!(pos, buf.len());
            if rows > 0 {
                flush(&mut out, &bytes, &offsets, &lines, rows);
            }
            return out;
        }
        buf.drain(..pos);
        base += pos;
    }
}

#[test]
fn fill_rows_gives_the_rows_of_parse_records_in_batches() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut generated = Vec::new();
    for i in 0..300 {
        let text: String = (0..rng.below(40))
            .map(|_| ['a', 'é', '😀', ' ', '"', '\\', 'z'][rng.below(7) as usize])
            .collect();
        let quoted = format!("{text:?}"); // a JSON string for these characters
        match i % 11 {
            3 => generated.extend_from_slice(b"   \r\n"),
            5 => generated.extend_from_slice(b"{\"text\": 1}\n"),
            7 => generated.extend_from_slice(b"{\"text\":\"a\xff\"}\r\n"),
            _ => {}
        }
        generated.extend_from_slice(format!("{{\"id\":{i},\"text\":{quoted}}}\n").as_bytes());
    }
    let small: &[u8] = b"{\"text\":\"a\"}\r\n\n  \n{\"text\":\"caf\\u00e9\",\"n\":[1]}\n{\"text\":5}\n[1]\n{\"text\":\"last\"}";
    for (input, format) in [
        (&generated[..], jsonl("text")),
        (small, jsonl("text")),
        (&generated[..], Format::Lines),
        (small, Format::Lines),
    ] {
        let whole = run(input, &format, true);
        let want: Vec<Vec<u8>> = (0..whole.len()).map(|i| whole.row(i).to_vec()).collect();
        for (chunk, batch, arena) in [
            (input.len(), 1000, (1 << 16, 1000)),
            (1, 1, (0, 1)),
            (7, 3, (1, 1)),
            (64, 7, (16, 2)),
            (1000, 50, (100, 3)),
            (4096, 128, (1 << 12, 128)),
        ] {
            let got = fill_run(input, &format, chunk, batch, arena, false);
            let ctx = format!("chunk {chunk}, batch {batch}, arena {arena:?}");
            let n = got.batches.len();
            for (k, (rows, _)) in got.batches.iter().enumerate() {
                assert!(
                    rows.len() == batch || (k == n - 1 && !rows.is_empty()),
                    "{ctx}"
                );
            }
            let rows: Vec<Vec<u8>> = got.batches.iter().flat_map(|b| b.0.clone()).collect();
            let lines: Vec<u32> = got.batches.iter().flat_map(|b| b.1.clone()).collect();
            assert_eq!(rows, want, "{ctx}");
            assert_eq!(
                lines,
                whole.lines.iter().map(|l| l + 1).collect::<Vec<_>>(),
                "{ctx}"
            );
            assert_eq!(got.errors, whole.errors, "{ctx}");
            assert_eq!(
                (got.blank, got.line_count),
                (whole.blank, whole.line_count),
                "{ctx}"
            );
        }
    }
}

#[test]
fn fill_rows_stops_at_the_first_error_without_consuming_it() {
    let input: &[u8] =
        b"{\"text\":\"a\"}\n\n{\"text\":\"b\"}\r\n  \n{\"text\":[]}\n{\"text\":\"c\"}\n";
    let bad_at = input
        .windows(11)
        .position(|w| w == br#"{"text":[]}"#)
        .unwrap();
    for chunk in [1, 5, input.len()] {
        for batch in [1, 2, 10] {
            let got = fill_run(input, &jsonl("text"), chunk, batch, (4, 1), true);
            let rows: Vec<Vec<u8>> = got.batches.iter().flat_map(|b| b.0.clone()).collect();
            assert_eq!(rows, [b"a".to_vec(), b"b".to_vec()]);
            assert_eq!(
                got.errors,
                [RecordError {
                    line: 4,
                    message: "field 'text' is an array, not a string".into()
                }]
            );
            assert_eq!(got.line_count, 4, "the bad line is not consumed");
            assert_eq!(got.stopped_at, Some(bad_at));
        }
    }
}

#[test]
fn fill_rows_writes_after_the_callers_rows_and_respects_max_rows() {
    let (mut bytes, mut offsets, mut lines) = (vec![0u8; 64], vec![0u32; 5], vec![0u32; 4]);
    offsets[1] = 3;
    lines[0] = 99;
    let mut arena = RowArena {
        bytes: &mut bytes,
        offsets: &mut offsets,
        lines: &mut lines,
        rows: 1,
    };
    let (mut errors, mut scratch) = (Vec::new(), Scratch::new());
    let input = b"x\nyy\nzzz\n";
    let f = fill_rows(
        input,
        &Format::Lines,
        false,
        10,
        2,
        false,
        usize::MAX,
        &mut arena,
        &mut errors,
        &mut scratch,
    );
    assert_eq!(
        (f.stop, f.consumed, f.line_count, arena.rows),
        (Stop::Rows, 5, 2, 3)
    );
    assert_eq!(&offsets[..4], [0, 3, 4, 6]);
    assert_eq!(&lines[..3], [99, 10, 11]);
    assert_eq!(&bytes[3..6], b"xyy");
    // No room for a 3-byte row in 2 bytes: nothing consumed, `need` says how much.
    let (mut small, mut offs, mut lns) = (vec![0u8; 2], vec![0u32; 3], vec![0u32; 2]);
    let mut arena = RowArena {
        bytes: &mut small,
        offsets: &mut offs,
        lines: &mut lns,
        rows: 0,
    };
    let f = fill_rows(
        b"zzz\n",
        &Format::Lines,
        true,
        1,
        10,
        false,
        usize::MAX,
        &mut arena,
        &mut errors,
        &mut scratch,
    );
    assert_eq!(
        (f.stop, f.consumed, f.line_count, f.need, arena.rows),
        (Stop::Bytes, 0, 0, 3, 0)
    );
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn mutated_lines_never_panic_and_keep_invariants() {
    let seeds: [&[u8]; 5] = [
        br#"{"id":12,"text":"caf\u00e9 \ud83d\ude00 \"q\" \\ end","tags":["a",{"b":[1.5e3,null,true]}]}"#,
        br#"{"text":"\ud800\udc00\u0041\n\t","x":-0.0}"#,
        "{\"text\":\"wörld 😀 中文\",\"\\u0074ext\":\"dup\"}".as_bytes(),
        br#"[{"text":"a"},"\u12ab",123,false]"#,
        br#"  {"a":{"b":{"c":[[["\\\"\/"]]]}}, "text" : "x"}  "#,
    ];
    let alphabet = b"{}[]\":,\\u0aZ \t\r-+.eE\xff\xc3\xa9\xed\xa0";
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let format = jsonl("text");
    let mut r = Records::new();
    for round in 0..20_000 {
        let mut line = seeds[round % seeds.len()].to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(line.len() as u64 + 1) as usize;
            match rng.below(4) {
                0 if at < line.len() => {
                    line.remove(at);
                }
                1 => line.truncate(at),
                _ => line.insert(
                    at.min(line.len()),
                    alphabet[rng.below(alphabet.len() as u64) as usize],
                ),
            }
        }
        line.retain(|&b| b != b'\n');
        parse_records(&line, &format, true, &mut r);
        check_invariants(&r);
        assert!(
            std::str::from_utf8(&r.bytes).is_ok(),
            "{:?}",
            String::from_utf8_lossy(&line)
        );
    }
}

#[test]
#[should_panic(expected = "exceeds MAX_INPUT")]
fn oversized_input_panics_with_a_message() {
    // Only the length is looked at before the check: a zero-filled allocation is never touched.
    let big = vec![0u8; dtesn_core::records::MAX_INPUT + 1];
    let mut r = Records::new();
    parse_records(&big, &Format::Lines, true, &mut r);
}

#[test]
fn fill_rows_stops_after_max_errors_with_their_lines_consumed() {
    let (mut bytes, mut offsets, mut lines) = (vec![0u8; 64], vec![0u32; 9], vec![0u32; 8]);
    let mut arena = RowArena {
        bytes: &mut bytes,
        offsets: &mut offsets,
        lines: &mut lines,
        rows: 0,
    };
    let (mut errors, mut scratch) = (Vec::new(), Scratch::new());
    let format = Format::Jsonl {
        field: "text".into(),
    };
    let input = b"{\"text\":\"a\"}\nbad\n\n[1]\n{\"text\":\"b\"}\nworse\n";
    // Calls with at most 2 errors (and 100 rows) each.
    let fill = |input: &[u8],
                first_line: u32,
                arena: &mut RowArena<'_>,
                errors: &mut Vec<RecordError>,
                scratch: &mut Scratch| {
        fill_rows(
            input, &format, true, first_line, 100, false, 2, arena, errors, scratch,
        )
    };
    let f = fill(input, 1, &mut arena, &mut errors, &mut scratch);
    // Row, bad, blank, bad: the second error's line is consumed, the rest is left; fewer errors
    // than the limit, the input is read to its end.
    assert_eq!(
        (f.stop, f.consumed, f.line_count, f.blank, arena.rows),
        (Stop::Errors, 22, 4, 1, 1)
    );
    assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 3]);
    let f = fill(&input[22..], 5, &mut arena, &mut errors, &mut scratch);
    assert_eq!(
        (f.stop, f.consumed, f.line_count, arena.rows),
        (Stop::Input, input.len() - 22, 2, 2)
    );
    assert_eq!(&arena.lines[..2], [1, 5]);
    assert_eq!(errors.iter().map(|e| e.line).collect::<Vec<_>>(), [1]);
}

#[test]
fn count_newlines_counts_every_newline_byte() {
    use dtesn_core::records::count_newlines;
    assert_eq!(count_newlines(b""), 0);
    assert_eq!(count_newlines(b"no newline"), 0);
    assert_eq!(count_newlines(b"\n"), 1);
    assert_eq!(count_newlines(b"a\r\nb\n\nc"), 3);
    // Long inputs go through the vector loop; every alignment and tail length against a plain count.
    let data: Vec<u8> = (0..5000u32).map(|i| if i % 7 == 0 || i % 61 == 0 { b'\n' } else { b'a' + (i % 26) as u8 }).collect();
    for start in 0..70 {
        for end in [data.len() - 70, data.len() - 3, data.len()] {
            let s = &data[start..end];
            assert_eq!(count_newlines(s), s.iter().filter(|&&b| b == b'\n').count(), "{start}..{end}");
        }
    }
}
