//! Files written whole or not at all: the one atomic writer of the workspace.
//!
//! Every crate that writes a file a user or a later run reads writes it through here: a
//! temporary file with a unique name beside the destination, synced and renamed into place on
//! commit, removed when dropped unfinished (an error, a panic, an early return). A destination
//! that exists and is not a regular file (a directory, a FIFO, a device node, a socket) is
//! refused before anything is written; a symbolic link is followed, so its target is replaced
//! and the link kept.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The temporary files and directories of the writers alive in this process, for
/// [`remove_live_temporaries`].
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn register(path: &Path) {
    if let Ok(mut v) = LIVE.lock() {
        v.push(path.to_owned());
    }
}

fn unregister(path: &Path) {
    if let Ok(mut v) = LIVE.lock() {
        v.retain(|q| q != path);
    }
}

/// Removes the temporary files and directories of every unfinished writer of this process:
/// what a binary calls when it is interrupted (SIGINT, SIGTERM) and will not unwind, so that
/// nothing half-written is left beside the user's files. Returns how many were removed.
pub fn remove_live_temporaries() -> usize {
    let paths = LIVE.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
    paths
        .iter()
        .filter(|p| if p.is_dir() { std::fs::remove_dir_all(p).is_ok() } else { std::fs::remove_file(p).is_ok() })
        .count()
}

/// Where a write to `dest` really lands: `dest`, or the file a symbolic link at `dest` points
/// to. Refuses a destination that exists and is not a regular file.
fn target_of(dest: &Path) -> Result<PathBuf> {
    let refuse = |what: &str| Error::Io {
        path: dest.to_owned(),
        source: std::io::Error::other(format!("is {what}, not a regular file; give a file path to write")),
    };
    let mut target = dest.to_owned();
    // Follow a chain of links by hand, so a dangling link still names the file to create.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(target),
            Err(source) => return Err(Error::Io { path: dest.to_owned(), source }),
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&target).map_err(|source| Error::Io { path: dest.to_owned(), source })?;
                target = match target.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(meta) if meta.is_file() => return Ok(target),
            Ok(meta) if meta.is_dir() => return Err(refuse("a directory")),
            Ok(_) => return Err(refuse("a special file (device, FIFO or socket)")),
        }
    }
    Err(refuse("a chain of more than 40 symbolic links"))
}

/// The directory a file is created in: its parent, or `.` for a bare name.
fn parent_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// `.NAME.` : the prefix of a temporary file or directory for `path`, hidden beside it.
fn temp_prefix(path: &Path) -> String {
    format!(".{}.", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
}

/// Makes the temporary for `path` (a file or a directory, by `make`): `.NAME.XXXXXX.tmp`
/// beside it. Errors name `dest`, the user's path.
fn temporary<T>(
    path: &Path,
    dest: &Path,
    make: impl FnOnce(&tempfile::Builder<'_, '_>, &Path) -> std::io::Result<T>,
) -> Result<T> {
    let prefix = temp_prefix(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    make(&builder, parent_dir(path)).map_err(|source| Error::Io { path: dest.to_owned(), source })
}

/// A file written under a temporary name beside its destination and renamed into place by
/// [`commit`](Self::commit): a killed run never leaves a half-written file that looks complete,
/// and two writers of one destination never share a temporary file. Dropped without `commit`,
/// the temporary file is removed. Errors name the destination, never the temporary file.
#[derive(Debug)]
pub struct AtomicFile {
    dest: PathBuf,
    target: PathBuf,
    writer: Option<BufWriter<tempfile::NamedTempFile>>,
}

impl AtomicFile {
    /// Starts writing `dest` (its directory must exist). Refuses a `dest` that exists and is
    /// not a regular file; follows a symbolic link.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_owned();
        let target = target_of(&dest)?;
        let file = temporary(&target, &dest, |b, dir| b.tempfile_in(dir))?;
        register(file.path());
        Ok(AtomicFile { dest, target, writer: Some(BufWriter::with_capacity(1 << 16, file)) })
    }

    /// The destination this file will have once committed (as given to [`create`](Self::create)).
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(mut self) -> Result<()> {
        let io = |source| Error::Io { path: self.dest.clone(), source };
        let Some(writer) = self.writer.take() else { return Ok(()) };
        let tmp = writer.get_ref().path().to_owned();
        let committed = (|| {
            let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
            file.as_file().sync_all().map_err(io)?;
            file.persist(&self.target).map_err(|e| io(e.error))?;
            Ok(())
        })();
        unregister(&tmp);
        committed
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // The temporary file itself is removed by `tempfile`.
        if let Some(w) = &self.writer {
            unregister(w.get_ref().path());
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("write after commit")),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// Writes `dest` whole or not at all with what `write` puts into it (see [`AtomicFile`]).
pub fn write_atomic_with(
    dest: impl AsRef<Path>,
    write: impl FnOnce(&mut AtomicFile) -> std::io::Result<()>,
) -> Result<()> {
    let mut file = AtomicFile::create(dest)?;
    write(&mut file).map_err(|source| Error::Io { path: file.dest.clone(), source })?;
    file.commit()
}

/// Writes `bytes` to `dest` whole or not at all (see [`AtomicFile`]).
pub fn write_atomic(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    write_atomic_with(dest, |f| f.write_all(bytes))
}

/// A directory filled under a temporary name beside its destination and renamed into place by
/// [`commit`](Self::commit) (a checkpoint, a model export): it appears complete or not at all.
/// Dropped without `commit`, the temporary directory and everything in it is removed.
#[derive(Debug)]
pub struct AtomicDir {
    dest: PathBuf,
    tmp: Option<tempfile::TempDir>,
}

impl AtomicDir {
    /// Starts filling `dest` (its parent must exist; `dest` itself must not, or be a directory
    /// that [`commit`](Self::commit) will replace).
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_owned();
        let tmp = temporary(&dest, &dest, |b, dir| b.tempdir_in(dir))?;
        register(tmp.path());
        Ok(AtomicDir { dest, tmp: Some(tmp) })
    }

    /// The temporary directory to write into.
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().map_or(&self.dest, tempfile::TempDir::path)
    }

    /// Syncs the directory and renames it into place, replacing a directory already at the
    /// destination.
    pub fn commit(mut self) -> Result<PathBuf> {
        let io = |source| Error::Io { path: self.dest.clone(), source };
        let Some(tmp) = self.tmp.take() else { return Ok(self.dest.clone()) };
        unregister(tmp.path());
        File::open(tmp.path()).and_then(|d| d.sync_all()).map_err(io)?;
        match std::fs::symlink_metadata(&self.dest) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&self.dest).map_err(io)?,
            Ok(_) => {
                return Err(io(std::io::Error::other(
                    "exists and is not a directory; remove it or choose another path",
                )));
            }
            Err(_) => {}
        }
        let kept = tmp.keep();
        if let Err(e) = std::fs::rename(&kept, &self.dest) {
            let _ = std::fs::remove_dir_all(&kept);
            return Err(io(e));
        }
        Ok(self.dest.clone())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if let Some(tmp) = &self.tmp {
            unregister(tmp.path());
        }
    }
}

/// Removes temporary files and directories that runs killed before they could clean up left
/// beside `path` (`.NAME.*.tmp`, where `NAME` is `path`'s file name). Returns how many.
pub fn remove_stale_temporaries(path: impl AsRef<Path>) -> Result<usize> {
    let path = path.as_ref();
    remove_temporaries(parent_dir(path), &temp_prefix(path))
}

/// Removes every temporary file or directory this module's writers make (`.….tmp`) in `dir`:
/// for a directory that one process owns (under a lock), after a writer there was killed.
/// Returns how many.
pub fn remove_stale_temporaries_in(dir: impl AsRef<Path>) -> Result<usize> {
    remove_temporaries(dir.as_ref(), ".")
}

fn remove_temporaries(dir: &Path, prefix: &str) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(Error::Io { path: dir.to_owned(), source }),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(prefix) && name.ends_with(".tmp")) {
            continue;
        }
        let p = entry.path();
        let gone = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        if gone.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn commits_whole_or_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.txt");
        write_atomic(&dest, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"new but unfinished").unwrap();
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["out.txt"]);
        let failed = write_atomic_with(&dest, |f| {
            f.write_all(b"half")?;
            Err(std::io::Error::other("disk on fire"))
        });
        let message = failed.unwrap_err().to_string();
        assert!(message.ends_with("out.txt: disk on fire") && !message.contains(".out.txt."), "{message}");
        assert_eq!(names(dir.path()), ["out.txt"]);
        write_atomic(&dest, b"new").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
    }

    #[test]
    fn two_writers_of_one_file_do_not_share_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("same.jsonl");
        let mut a = AtomicFile::create(&dest).unwrap();
        let mut b = AtomicFile::create(&dest).unwrap();
        a.write_all(b"aaaa\n").unwrap();
        b.write_all(b"bb\n").unwrap();
        a.commit().unwrap();
        b.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"bb\n");
        assert_eq!(names(dir.path()), ["same.jsonl"]);
    }

    #[test]
    fn refuses_directories_and_special_files_and_follows_links() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        #[cfg(unix)]
        {
            let err = write_atomic("/dev/null", b"x").unwrap_err().to_string();
            assert!(err.contains("special file"), "{err}");
            let real = dir.path().join("real.txt");
            let link = dir.path().join("link.txt");
            std::fs::write(&real, b"old").unwrap();
            std::os::unix::fs::symlink(&real, &link).unwrap();
            write_atomic(&link, b"new").unwrap();
            assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
            assert_eq!(std::fs::read(&real).unwrap(), b"new");
        }
    }

    #[test]
    fn directories_appear_whole_and_stale_temporaries_go() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("step-000001");
        {
            let d = AtomicDir::create(&dest).unwrap();
            std::fs::write(d.path().join("a"), b"1").unwrap();
        }
        assert!(names(dir.path()).is_empty());
        let d = AtomicDir::create(&dest).unwrap();
        std::fs::write(d.path().join("a"), b"1").unwrap();
        assert_eq!(d.commit().unwrap(), dest);
        assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"1");
        // What a killed run leaves: a temporary nobody removed.
        let stale = AtomicDir::create(&dest).unwrap().path().to_owned();
        let kept =
            tempfile::Builder::new().prefix(".step-000001.").suffix(".tmp").tempdir_in(dir.path()).unwrap().keep();
        assert!(kept.exists() && !stale.exists());
        assert_eq!(remove_stale_temporaries(&dest).unwrap(), 1);
        assert_eq!(names(dir.path()), ["step-000001"]);
    }
}
