//! Which repositories ship pushed to, per registry, so a later push to another repository can
//! mount shared blobs instead of uploading them. Best effort: a missing or unreadable file only
//! means no mount candidates.

use std::collections::BTreeMap;
use std::path::Path;

const FILE: &str = "pushed-repositories.json";
const KEEP: usize = 10;

type Known = BTreeMap<String, Vec<String>>;

fn load(dir: &Path) -> Known {
    std::fs::read(dir.join(FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// Repositories on `registry` ship pushed to before, most recent first, other than `repo`.
pub fn candidates(dir: Option<&Path>, registry: &str, repo: &str) -> Vec<String> {
    let Some(dir) = dir else { return vec![] };
    load(dir).remove(registry).unwrap_or_default().into_iter().filter(|r| r != repo).collect()
}

/// Remember a push to `repo` on `registry`.
pub fn record(dir: Option<&Path>, registry: &str, repo: &str) {
    let Some(dir) = dir else { return };
    let mut known = load(dir);
    let list = known.entry(registry.to_string()).or_default();
    list.retain(|r| r != repo);
    list.insert(0, repo.to_string());
    list.truncate(KEEP);
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::io::Write::write_all(&mut tmp, &serde_json::to_vec_pretty(&known).expect("JSON"))?;
        tmp.persist(dir.join(FILE)).map_err(|e| e.error)?;
        Ok(())
    };
    let _ = write();
}

#[cfg(test)]
mod tests {
    #[test]
    fn most_recent_first_without_the_target() {
        let d = tempfile::tempdir().unwrap();
        super::record(Some(d.path()), "r", "a");
        super::record(Some(d.path()), "r", "b");
        super::record(Some(d.path()), "r", "a");
        assert_eq!(super::candidates(Some(d.path()), "r", "c"), ["a", "b"]);
        assert_eq!(super::candidates(Some(d.path()), "r", "a"), ["b"]);
        assert!(super::candidates(Some(d.path()), "other", "a").is_empty());
    }
}
