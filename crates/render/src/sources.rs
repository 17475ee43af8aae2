//! Where templates and locale files come from: the copies compiled into the binary, or a
//! directory on disk, both read into the same in-memory list of files.

use std::fs;
use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

use crate::error::LoadError;

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../templates");
static LOCALES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../locales");

/// Directories deeper than this are not read (`locales/<lang>/<file>.ftl` needs two).
const MAX_DEPTH: usize = 4;

/// One text file, by its path relative to the directory it was loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceFile {
    pub(crate) path: PathBuf,
    pub(crate) contents: String,
}

impl SourceFile {
    #[cfg(test)]
    pub(crate) fn new(path: &str, contents: &str) -> Self {
        Self {
            path: PathBuf::from(path),
            contents: contents.to_string(),
        }
    }
}

pub(crate) fn embedded_templates() -> Result<Vec<SourceFile>, LoadError> {
    from_embedded(&TEMPLATES, "templates")
}

pub(crate) fn embedded_locales() -> Result<Vec<SourceFile>, LoadError> {
    from_embedded(&LOCALES, "locales")
}

fn from_embedded(dir: &Dir<'_>, name: &str) -> Result<Vec<SourceFile>, LoadError> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(dir) = stack.pop() {
        stack.extend(dir.dirs());
        for file in dir.files() {
            if is_hidden(file.path()) {
                continue;
            }
            let contents = file.contents_utf8().ok_or_else(|| LoadError::NotUtf8 {
                path: Path::new(name).join(file.path()),
            })?;
            out.push(SourceFile {
                path: file.path().to_path_buf(),
                contents: contents.to_string(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Reads every non-hidden file under `root` (a few levels deep), with paths relative to it.
pub(crate) fn from_disk(root: &Path) -> Result<Vec<SourceFile>, LoadError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LoadError::Io { path, source }
    };
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            if is_hidden(&relative) {
                continue;
            }
            // Follows symlinks, as operators often link a config directory into place.
            let meta = fs::metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                if depth + 1 < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
            } else if meta.is_file() {
                let bytes = fs::read(&path).map_err(io(&path))?;
                let contents = String::from_utf8(bytes)
                    .map_err(|_| LoadError::NotUtf8 { path: path.clone() })?;
                out.push(SourceFile {
                    path: relative,
                    contents,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}
