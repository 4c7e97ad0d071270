//! XML for the JUnit reports (`app` for replay runs, `drift` for diffs): text escaping
//! and the envelope of a report with one suite.

/// Escapes text for an XML attribute or element; control characters XML 1.0 cannot
/// carry are dropped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// Opens a JUnit report with one suite: the XML declaration, `<testsuites>` and
/// `<testsuite>` (names escaped here); `JUNIT_TAIL` closes it.
pub fn junit_head(out: &mut String, name: &str, suite: &str, tests: usize, failures: usize) {
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">\n",
        escape(name)
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">\n",
        escape(suite)
    ));
}

/// Closes what `junit_head` opened.
pub const JUNIT_TAIL: &str = "  </testsuite>\n</testsuites>\n";

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(
            super::escape("a<b & \"c\"\u{1}'d'>"),
            "a&lt;b &amp; &quot;c&quot;&apos;d&apos;&gt;"
        );
    }
}
