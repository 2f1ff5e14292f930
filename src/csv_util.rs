//! CSV files as spreadsheets open them, for every export that writes one:
//! text cells that cannot run as formulas ([`inert`]: the administrator's day
//! per store in `admin::dashboard`, the pharmacy's end-of-day summary in
//! `pharmacy::summary_page`, the open data's `stock.csv` in `opendata::stock`),
//! and for the files staff open in Excel (the first two) a byte order mark
//! ([`spreadsheet_writer`]). Shared by those features, so it lives beside them
//! rather than inside one of them.

/// A CSV writer into memory whose bytes start with a UTF-8 byte order mark:
/// Excel, the program most administrators and pharmacists open CSV with,
/// reads a file without one in the system's legacy code page (CP949 on Korean
/// Windows) and garbles every Korean store name; with the mark it reads
/// UTF-8. Other tools skip it. Finish with [`into_bytes`].
pub fn spreadsheet_writer() -> csv::Writer<Vec<u8>> {
    csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec())
}

/// The bytes written, flushed.
pub fn into_bytes(out: csv::Writer<Vec<u8>>) -> Result<Vec<u8>, csv::Error> {
    // Flushing into a `Vec` cannot fail, but the error is typed all the same.
    out.into_inner().map_err(|e| e.into_error().into())
}

/// Text a spreadsheet would not run as a formula: a cell starting with `=`,
/// `+`, `-`, `@` (or a tab or carriage return) gets a leading `'`, which
/// spreadsheets show as text. Store names come from imported files, so a name
/// like `=HYPERLINK(…)` must not become a live link in an administrator's Excel.
pub fn inert(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spreadsheet_file_starts_with_a_byte_order_mark_then_its_records() {
        let mut out = spreadsheet_writer();
        out.write_record(["code", "name"]).unwrap();
        out.write_record(["11800001", "중앙약국, 본점"]).unwrap();
        let bytes = into_bytes(out).unwrap();
        assert_eq!(
            bytes,
            "\u{feff}code,name\n11800001,\"중앙약국, 본점\"\n".as_bytes()
        );
        assert_eq!(into_bytes(spreadsheet_writer()).unwrap(), b"\xEF\xBB\xBF");
    }

    #[test]
    fn a_store_name_that_looks_like_a_formula_is_exported_as_text() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(inert("-1+2"), "'-1+2");
        assert_eq!(inert("+82 2"), "'+82 2");
        assert_eq!(inert("\tx"), "'\tx");
        assert_eq!(inert("\rx"), "'\rx");
        assert_eq!(inert("중앙약국"), "중앙약국");
        assert_eq!(inert("a=b"), "a=b");
        assert_eq!(inert(""), "");
    }
}
