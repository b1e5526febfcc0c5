//! Temporary files ship writes beside its outputs (blob temp files, archives being written, new
//! layouts being created, staging directories): removed when ship is interrupted (SIGINT,
//! SIGTERM, SIGHUP), and swept at the next write when something harder (SIGKILL, a crash, power
//! loss) left them behind.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// What to remove if ship is interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    File(PathBuf),
    Tree(PathBuf),
    /// A directory made to hold a lock file: removed only if that is all it holds and nobody
    /// holds the lock (another writer may be creating a layout in it).
    LockDir(PathBuf, &'static str),
}

static PENDING: Mutex<Vec<Item>> = Mutex::new(Vec::new());
/// Held while a step that makes work visible (a rename into place) runs, and by the interrupt
/// handler from the moment it starts: a step is then either wholly before the clean-up or never.
static COMMIT: Mutex<()> = Mutex::new(());

/// Removes its path from the interrupt list when dropped (the file was kept or removed by then).
#[must_use]
pub struct Registered(Item);

impl Drop for Registered {
    fn drop(&mut self) {
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = pending.iter().rposition(|p| *p == self.0) {
            pending.remove(i);
        }
    }
}

fn register(item: Item) -> Registered {
    PENDING.lock().unwrap_or_else(|e| e.into_inner()).push(item.clone());
    Registered(item)
}

/// Remove `path` (a file) if ship is interrupted before the guard drops.
pub fn file(path: &Path) -> Registered {
    register(Item::File(path.to_path_buf()))
}

/// Remove `path` and everything under it if ship is interrupted before the guard drops.
pub fn tree(path: &Path) -> Registered {
    register(Item::Tree(path.to_path_buf()))
}

/// Run `step`, a rename that makes finished work visible, such that an interrupt either comes
/// after it (and the guards it drops are forgotten first) or stops ship before it starts.
pub fn commit<T>(step: impl FnOnce() -> T) -> T {
    let _held = COMMIT.lock().unwrap_or_else(|e| e.into_inner());
    step()
}

/// A temporary file in `dir`, registered for removal on interrupt in the same step as it is
/// made: there is no moment at which it exists unregistered.
pub fn temp_file_in(dir: &Path, prefix: &str) -> std::io::Result<(tempfile::NamedTempFile, Registered)> {
    commit(|| {
        let tmp = tempfile::Builder::new().prefix(prefix).tempfile_in(dir)?;
        let guard = file(tmp.path());
        Ok((tmp, guard))
    })
}

/// Remove `dir` if ship is interrupted while it holds nothing but the unlocked `lock_file`.
pub fn lock_dir(dir: &Path, lock_file: &'static str) -> Registered {
    register(Item::LockDir(dir.to_path_buf(), lock_file))
}

fn remove_lock_dir(dir: &Path, lock_file: &str) -> std::io::Result<()> {
    let only_lock = std::fs::read_dir(dir)?.flatten().all(|e| e.file_name() == lock_file);
    let lock = dir.join(lock_file);
    if only_lock && lock_is_free(&lock) {
        std::fs::remove_file(&lock)?;
        std::fs::remove_dir(dir)?;
    }
    Ok(())
}

/// Remove everything registered now (newest first). For the signal handler.
pub fn run() {
    let items = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    for item in items.iter().rev() {
        let _ = match item {
            Item::File(p) => std::fs::remove_file(p),
            Item::Tree(p) => std::fs::remove_dir_all(p),
            Item::LockDir(p, lock) => remove_lock_dir(p, lock),
        };
    }
}

/// Wait out an interrupt being handled: the handler holds the commit lock until it exits with
/// 130, so a run that failed because the handler removed its files does not report that
/// failure (and exit 1) first. Returns at once otherwise. For main, before an error exit.
pub fn settle() {
    drop(COMMIT.lock().unwrap_or_else(|e| e.into_inner()));
}

/// On SIGINT, SIGTERM or SIGHUP: remove what is registered and exit with 130 (as a shell
/// reports an interrupted command). Installed once, by main.
pub fn install_signal_handler() {
    let _ = ctrlc::set_handler(|| {
        // Never released: the process exits while holding it, so no rename starts after this.
        std::mem::forget(COMMIT.lock().unwrap_or_else(|e| e.into_inner()));
        run();
        eprintln!("ship: interrupted; temporary files removed");
        std::process::exit(130);
    });
}

/// How long an abandoned temporary file must have been left alone before a sweep removes it,
/// when no lock says whether its writer is alive.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);

fn age(path: &Path) -> Option<Duration> {
    let m = std::fs::symlink_metadata(path).ok()?;
    SystemTime::now().duration_since(m.modified().ok()?).ok()
}

/// Remove entries of `dir` whose names start with one of `prefixes` and that are stale: not
/// locked by a live writer (a file whose `flock` is free and that nobody wrote to for a minute),
/// or untouched for [`STALE_AFTER`]. Best effort: returns how many were removed.
pub fn sweep(dir: &Path, prefixes: &[&str]) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let path = e.path();
        let Some(age) = age(&path) else { continue };
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let stale = age >= STALE_AFTER || (!is_dir && age >= Duration::from_secs(60) && lock_is_free(&path));
        if stale {
            let r = if is_dir { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed += usize::from(r.is_ok());
        }
    }
    removed
}

fn lock_is_free(path: &Path) -> bool {
    match std::fs::File::open(path) {
        Ok(f) => f.try_lock().is_ok(),
        Err(_) => false,
    }
}

/// Remove every entry of `dir` whose name starts with one of `prefixes`, whatever its age: for
/// places only one writer can be in at a time (under the layout lock).
pub fn sweep_all(dir: &Path, prefixes: &[&str]) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| prefixes.iter().any(|p| e.file_name().to_string_lossy().starts_with(p)))
        .filter(|e| {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) { std::fs::remove_dir_all(p) } else { std::fs::remove_file(p) }
                .is_ok()
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_paths_are_removed_by_run_and_forgotten_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::write(&a, "x").unwrap();
        std::fs::create_dir_all(b.join("c")).unwrap();
        let kept = d.path().join("kept");
        std::fs::write(&kept, "x").unwrap();
        {
            let _k = file(&kept);
        }
        let _a = file(&a);
        let _b = tree(&b);
        run();
        assert!(!a.exists() && !b.exists());
        assert!(kept.exists(), "a dropped guard must not remove its file");
    }

    #[test]
    fn sweep_keeps_fresh_and_locked_files() {
        let d = tempfile::tempdir().unwrap();
        let fresh = d.path().join(".tmp-fresh");
        std::fs::write(&fresh, "x").unwrap();
        let old = d.path().join(".tmp-old");
        std::fs::write(&old, "x").unwrap();
        let locked = d.path().join(".tmp-locked");
        std::fs::write(&locked, "x").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(7200);
        let two_minutes = SystemTime::now() - Duration::from_secs(120);
        std::fs::File::options().write(true).open(&old).unwrap().set_modified(long_ago).unwrap();
        let holder = std::fs::File::options().write(true).open(&locked).unwrap();
        holder.set_modified(two_minutes).unwrap();
        holder.lock().unwrap();
        let other = d.path().join("other");
        std::fs::write(&other, "x").unwrap();
        std::fs::File::options().write(true).open(&other).unwrap().set_modified(long_ago).unwrap();
        assert_eq!(sweep(d.path(), &[".tmp-"]), 1);
        assert!(fresh.exists() && locked.exists() && other.exists() && !old.exists());
    }
}
