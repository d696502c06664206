//! Outputs never clobber inputs or strangers' files: the one output-path check of the
//! workspace, the run directory (a marker naming the command that made it, and a lock), and
//! the locked append target.
//!
//! - [`check_outputs`]: an output that is — or resolves, through symbolic links, to — one of
//!   the command's inputs, or another of its outputs, is refused before anything runs.
//! - [`RunDir::open`]: a directory a command writes into. It must be new, empty, or made by
//!   the same command (its [`RUN_MARKER`] says so); a non-empty directory kailin did not
//!   make, or one another command made, is refused unless forced; `/`, the home directory and
//!   a repository's root are always refused. It is locked for the life of the value, so a
//!   second run on it is refused with the holder named (shards of one run share it).
//! - [`describe_path`]: what a path is, in words, for messages ("is a file", "is a dangling
//!   symbolic link to …").

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The file a run directory's maker leaves in it: which kailin command made it.
pub const RUN_MARKER: &str = "kailin-run.json";

/// The lock file of a run directory (it holds the holder's process id and command).
pub const RUN_LOCK: &str = ".kailin.lock";

fn refused(path: &Path, reason: impl Into<String>) -> Error {
    Error::Refused { path: path.to_owned(), reason: reason.into() }
}

/// Where `path` leads: itself, or what its chain of symbolic links names (a dangling link
/// names the file it would create); made absolute, with its existing part canonical.
pub fn resolve(path: &Path) -> PathBuf {
    let mut target = path.to_owned();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(&target) {
                Ok(link) => {
                    target = match target.parent() {
                        Some(dir) if link.is_relative() => dir.join(link),
                        _ => link,
                    }
                }
                Err(_) => break,
            },
            _ => break,
        }
    }
    if let Ok(c) = std::fs::canonicalize(&target) {
        return c;
    }
    let absolute = std::path::absolute(&target).unwrap_or(target);
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent).map_or(absolute.clone(), |p| p.join(name)),
        _ => absolute,
    }
}

/// What `path` is, in words: "does not exist", "is a file", "is a directory", "is a symbolic
/// link to a file (T)", "is a dangling symbolic link (to T)", "is a special file".
pub fn describe_path(path: &Path) -> String {
    let kind = |meta: &std::fs::Metadata| {
        if meta.is_dir() {
            "a directory"
        } else if meta.is_file() {
            "a file"
        } else {
            "a special file (device, FIFO or socket)"
        }
    };
    match std::fs::symlink_metadata(path) {
        Err(_) => "does not exist".into(),
        Ok(meta) if meta.file_type().is_symlink() => {
            let to = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
            match std::fs::metadata(path) {
                Ok(target) => format!("is a symbolic link to {} ({to})", kind(&target)),
                Err(_) => format!("is a dangling symbolic link (to {to})"),
            }
        }
        Ok(meta) => format!("is {}", kind(&meta)),
    }
}

/// Refuses an output that is, or resolves to, one of the command's inputs (it would be
/// replaced by what is read from it), or another output (each would be written over the
/// other). Each path comes with the option that named it, for the message.
pub fn check_outputs(inputs: &[(&str, &Path)], outputs: &[(&str, &Path)]) -> Result<()> {
    let resolved_inputs: Vec<(&str, &Path, PathBuf)> = inputs.iter().map(|(f, p)| (*f, *p, resolve(p))).collect();
    for (i, (flag, out)) in outputs.iter().enumerate() {
        let target = resolve(out);
        if let Some((in_flag, input, _)) = resolved_inputs.iter().find(|(_, _, r)| *r == target) {
            return Err(refused(
                out,
                format!(
                    "{flag} is the same file as the input {in_flag} {}: writing it would replace the input; give {flag} another path",
                    input.display()
                ),
            ));
        }
        for (other_flag, other) in &outputs[i + 1..] {
            if resolve(other) == target {
                return Err(refused(
                    out,
                    format!("{flag} and {other_flag} name the same file: give each output its own path"),
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a destination for a file that exists and is not a regular file (or a link to one),
/// naming what it is.
pub fn check_output_file(flag: &str, path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(refused(path, format!("{flag} {}; give a file path", describe_path(path)))),
        _ => Ok(()),
    }
}

/// How a [`RunDir`] is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// One process at a time.
    Exclusive,
    /// Any number of processes holding it shared (the shards of one run), but none while a
    /// process holds it exclusively.
    Shared,
}

/// What a [`RunDir`]'s marker says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunMarker {
    /// Always `kailin`.
    pub made_by: String,
    /// The command that made the directory (`kailin train sft`, `kailin run`…).
    pub command: String,
    /// The kailin version that made it.
    pub version: String,
}

/// A directory one command writes into, checked and locked. It must be new, empty, or made by
/// the same command (its [`RUN_MARKER`] says so); a non-empty directory kailin did not make,
/// or one another command made, is refused unless forced; `/`, the home directory and a
/// repository's root are always refused. The lock ([`RUN_LOCK`]) is held until the value is
/// dropped (or the process ends), so a second run on the directory is refused with the holder
/// named; [`Sharing::Shared`] holders (the shards of one run) coexist.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

/// Options of [`RunDir::open`].
#[derive(Debug, Clone)]
pub struct RunDirOptions<'a> {
    /// The option that named the directory (`--out`), for messages.
    pub flag: &'a str,
    /// The command writing it (`kailin train sft`); a directory another command made is
    /// refused unless `force`.
    pub command: &'a str,
    /// Write into a non-empty directory kailin did not make, or another command made.
    pub force: bool,
    /// How the lock is taken.
    pub sharing: Sharing,
}

impl RunDir {
    /// Checks, creates (when missing), locks and marks `path` (see [`RunDir`]).
    ///
    /// Errors: [`Error::Refused`] naming why and the fix; [`Error::Io`].
    pub fn open(path: &Path, o: &RunDirOptions<'_>) -> Result<RunDir> {
        let flag = o.flag;
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                return Err(refused(
                    path,
                    format!("{flag} {}, not a directory; give a directory path", describe_path(path)),
                ));
            }
            Err(_) if std::fs::symlink_metadata(path).is_ok() => {
                return Err(refused(
                    path,
                    format!("{flag} {}; give a directory path (or remove the link)", describe_path(path)),
                ));
            }
            _ => {}
        }
        let real = resolve(path);
        let home = std::env::var_os("HOME").map(|h| resolve(Path::new(&h)));
        if real.parent().is_none() || home.as_deref() == Some(real.as_path()) {
            return Err(refused(
                path,
                format!("{flag} is the root or your home directory; give a directory of its own, such as ./kailin-out"),
            ));
        }
        if real.join(".git").exists() {
            return Err(refused(
                path,
                format!("{flag} is the root of a repository; give a directory of its own, such as target/kailin-run"),
            ));
        }
        std::fs::create_dir_all(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let marker_path = path.join(RUN_MARKER);
        let marker = match std::fs::read(&marker_path) {
            Ok(bytes) => Some(serde_json::from_slice::<RunMarker>(&bytes).map_err(|e| {
                refused(&marker_path, format!("is not a kailin run marker ({e}); remove it, or give another {flag}"))
            })?),
            Err(_) => None,
        };
        match &marker {
            Some(m) if m.command != o.command && !o.force => {
                return Err(refused(
                    path,
                    format!(
                        "{flag} was made by `{}`, not `{}`: its files would be replaced; give another {flag} (or --force)",
                        m.command, o.command
                    ),
                ));
            }
            None if !o.force && !is_empty_dir(path)? => {
                return Err(refused(
                    path,
                    format!(
                        "{flag} exists, is not empty and was not made by kailin (no {RUN_MARKER}): its files could be replaced; \
                         give a new or empty directory (or --force to write into it)"
                    ),
                ));
            }
            _ => {}
        }
        let lock = lock_file(&path.join(RUN_LOCK), o.sharing, &format!("{flag} {}", path.display()), o.command)?;
        if marker.as_ref().is_none_or(|m| m.command != o.command) {
            let m = RunMarker {
                made_by: "kailin".into(),
                command: o.command.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            let bytes =
                serde_json::to_vec_pretty(&m).map_err(|e| Error::Io { path: marker_path.clone(), source: e.into() })?;
            crate::write_atomic(&marker_path, &bytes)?;
        }
        Ok(RunDir { path: path.to_owned(), _lock: lock })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn is_empty_dir(path: &Path) -> Result<bool> {
    let mut entries = std::fs::read_dir(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
    Ok(entries.next().is_none())
}

/// Takes a lock on `lock` (created), writing the holder's process id and `command` into it so
/// that a refused run can name the holder; `what` names the locked thing in the message.
pub fn lock_file(lock: &Path, sharing: Sharing, what: &str, command: &str) -> Result<File> {
    let io = |source| Error::Io { path: lock.to_owned(), source };
    let mut file =
        std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(lock).map_err(io)?;
    let taken = match sharing {
        Sharing::Exclusive => file.try_lock(),
        Sharing::Shared => file.try_lock_shared(),
    };
    match taken {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(lock).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() { "another process".to_owned() } else { holder.to_owned() };
            return Err(refused(
                lock.parent().unwrap_or(lock),
                format!("{what} is in use by {holder}; wait for it to finish, or give another directory"),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    if sharing == Sharing::Exclusive {
        file.set_len(0).map_err(io)?;
        write!(file, "pid {} (`{command}`)", std::process::id()).map_err(io)?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn options(command: &str) -> RunDirOptions<'_> {
        RunDirOptions { flag: "--out", command, force: false, sharing: Sharing::Exclusive }
    }

    #[test]
    fn outputs_equal_to_inputs_through_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "x\n").unwrap();
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let other = dir.path().join("out.jsonl");
        let err = check_outputs(&[("--input", &input)], &[("--out", &link)]).unwrap_err().to_string();
        assert!(err.contains("same file as the input --input"), "{err}");
        let relative = dir.path().join("sub/../in.jsonl");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(check_outputs(&[("--input", &input)], &[("--out", &relative)]).is_err());
        assert!(check_outputs(&[("--input", &input)], &[("--out", &other), ("--dpo", &other)]).is_err());
        check_outputs(&[("--input", &input)], &[("--out", &other)]).unwrap();
        // A dangling link to the input's path is the input.
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("new.jsonl"), &dangling).unwrap();
        let new = dir.path().join("new.jsonl");
        assert!(check_outputs(&[("--input", &new)], &[("--out", &dangling)]).is_err());
        assert!(describe_path(&dangling).starts_with("is a dangling symbolic link"));
        assert_eq!(describe_path(&input), "is a file");
        assert!(describe_path(&link).starts_with("is a symbolic link to a file"));
    }

    #[test]
    fn run_directories_are_checked_marked_and_locked() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let held = RunDir::open(&run, &options("kailin train sft")).unwrap();
        assert!(run.join(RUN_MARKER).is_file());
        let err = RunDir::open(&run, &options("kailin train sft")).unwrap_err().to_string();
        assert!(err.contains("in use by pid") && err.contains("kailin train sft"), "{err}");
        drop(held);
        // The same command again: fine; another command: refused unless forced.
        drop(RunDir::open(&run, &options("kailin train sft")).unwrap());
        let err = RunDir::open(&run, &options("kailin eval pubmedqa")).unwrap_err().to_string();
        assert!(err.contains("was made by `kailin train sft`"), "{err}");
        // A stranger's non-empty directory: refused; empty: fine.
        let stranger = dir.path().join("mine");
        std::fs::create_dir(&stranger).unwrap();
        std::fs::write(stranger.join("report.md"), "mine").unwrap();
        let err = RunDir::open(&stranger, &options("kailin run")).unwrap_err().to_string();
        assert!(err.contains("not made by kailin"), "{err}");
        drop(RunDir::open(&stranger, &RunDirOptions { force: true, ..options("kailin run") }).unwrap());
        assert_eq!(std::fs::read_to_string(stranger.join("report.md")).unwrap(), "mine");
        // A repository's root, a file, a dangling link.
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        assert!(RunDir::open(&repo, &options("kailin run")).unwrap_err().to_string().contains("repository"));
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(RunDir::open(&file, &options("kailin run")).unwrap_err().to_string().contains("is a file"));
        let dangling = dir.path().join("d");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(RunDir::open(&dangling, &options("kailin run")).unwrap_err().to_string().contains("dangling"));
        // Shared holders coexist; an exclusive one is refused while they hold it.
        let shared = RunDirOptions { sharing: Sharing::Shared, ..options("kailin run") };
        let runs = dir.path().join("shards");
        let a = RunDir::open(&runs, &shared).unwrap();
        let b = RunDir::open(&runs, &shared).unwrap();
        assert!(RunDir::open(&runs, &options("kailin run")).is_err());
        drop((a, b));
        drop(RunDir::open(&runs, &options("kailin run")).unwrap());
    }
}
