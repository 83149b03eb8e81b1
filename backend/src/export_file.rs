//! The file `usage export` writes: lines go to `<file>.partial` beside it, which is fsynced,
//! renamed into place and its directory fsynced before the export counts as done. Only then does
//! the export record what it wrote and move its checkpoint, so a crash or a full disk never leaves
//! events counted as exported that are not in a complete file. An existing file is never
//! overwritten (it may be an export not yet uploaded); a failed export leaves no partial file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// An export file being written.
pub struct ExportFile {
    path: PathBuf,
    partial: PathBuf,
    file: Option<BufWriter<File>>,
}

impl ExportFile {
    /// Starts writing `path`; fails if it exists.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !path.exists(),
            "{} exists: upload it and move it away first (an export never overwrites one)",
            path.display()
        );
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        Ok(Self {
            path: path.to_owned(),
            partial,
            file: Some(BufWriter::new(file)),
        })
    }

    /// Writes one line.
    pub fn line(&mut self, line: &str) -> anyhow::Result<()> {
        let file = self.file.as_mut().context("the export file is closed")?;
        writeln!(file, "{line}").with_context(|| format!("writing {}", self.partial.display()))
    }

    /// Makes the file durable under its name: flush, fsync, rename, fsync the directory.
    pub fn commit(mut self) -> anyhow::Result<()> {
        let file = self.file.take().context("the export file is closed")?;
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", self.partial.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", self.partial.display()))?;
        drop(file);
        std::fs::rename(&self.partial, &self.path)
            .with_context(|| format!("renaming into {}", self.path.display()))?;
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing the directory {}", dir.display()))
    }
}

impl Drop for ExportFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}
