//! The `file://` transport: each message becomes `<dir>/<unix_ms>-<message-id>.eml`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use lettre::Message;

use crate::error::SendError;

/// Distinguishes temporary files written at the same moment.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn file_error(path: &Path, source: std::io::Error) -> SendError {
    SendError::File {
        path: path.to_owned(),
        source,
    }
}

/// Writes `message` into `dir` (created if missing) and returns the file's path. The file
/// appears complete or not at all, and an existing file is never overwritten.
pub(crate) async fn write(dir: &Path, message: &Message) -> Result<PathBuf, SendError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| file_error(dir, e))?;
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let id = eml_file_stem(message.headers().get_raw("Message-ID"));
    let temp = dir.join(format!(
        ".{millis}-{}-{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    tokio::fs::write(&temp, message.formatted())
        .await
        .map_err(|e| file_error(&temp, e))?;
    let mut attempt = 0u32;
    let result = loop {
        let name = match attempt {
            0 => format!("{millis}-{id}.eml"),
            n => format!("{millis}-{id}-{n}.eml"),
        };
        let path = dir.join(name);
        // A hard link fails instead of replacing an existing file, unlike rename.
        match tokio::fs::hard_link(&temp, &path).await {
            Ok(()) => break Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 1000 => {
                attempt += 1;
            }
            Err(e) => break Err(file_error(&path, e)),
        }
    };
    let _ = tokio::fs::remove_file(&temp).await;
    result
}

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
