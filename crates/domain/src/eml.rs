//! The file-name rule for saved emails: the part of an `.eml` file's name that comes from the
//! message's Message-ID. The SMTP file outbox and the demo's capturing server both name files
//! with it, so one message is found under the same name wherever it was saved.

/// A Message-ID as a safe file-name fragment: brackets dropped, characters outside
/// `[A-Za-z0-9._@+=-]` replaced by `_`, at most 100 long; `nomsgid` when empty.
pub fn eml_file_stem(message_id: Option<&str>) -> String {
    let trimmed = message_id
        .unwrap_or_default()
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>');
    let clean: String = trimmed
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+=-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let clean = clean.trim_start_matches('.');
    if clean.is_empty() {
        "nomsgid".to_owned()
    } else {
        clean.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_become_safe_file_name_parts() {
        let cases = [
            (Some("<job-1@herald.test>"), "job-1@herald.test"),
            (Some("<../x/y>"), "_x_y"),
            (Some(" <../../etc/passwd> "), "_.._etc_passwd"),
            (Some("<a/b\\c d>"), "a_b_c_d"),
            (Some("<>"), "nomsgid"),
            (Some("<...>"), "nomsgid"),
            (None, "nomsgid"),
        ];
        for (input, expected) in cases {
            assert_eq!(eml_file_stem(input), expected, "{input:?}");
        }
        assert_eq!(eml_file_stem(Some(&"x".repeat(500))).len(), 100);
    }
}
