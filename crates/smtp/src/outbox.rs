//! The `file://` transport: each message becomes `<dir>/<unix_ms>-<message-id>.eml`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use herald_domain::eml_file_stem;
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
