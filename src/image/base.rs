//! The base layer ship generates for static binaries, instead of pulling a distro image.
//!
//! Its only inputs are the CA bundle and the constants below. It has its own fixed mtime (0),
//! not SOURCE_DATE_EPOCH, so every build of every revision shares the same base layer digest:
//! a registry stores it once and a push skips it.

use super::Error;
use super::layer::Tree;
use std::sync::Arc;

pub const NONROOT: u64 = 65532;
pub const CA_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";
/// mtime of every base layer entry.
pub const BASE_MTIME: u64 = 0;

const PASSWD: &str = "root:x:0:0:root:/root:/sbin/nologin\n\
                      nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n";
const GROUP: &str = "root:x:0:\nnonroot:x:65532:\n";
/// glibc reads this for name lookups: files first, then DNS, as distroless images do.
const NSSWITCH: &str = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n\
                        networks: files\nprotocols: files\nservices: files\n";

/// The base layer's tree for a CA bundle.
pub fn tree(ca_bundle: Arc<Vec<u8>>) -> Result<Tree, Error> {
    let mut t = Tree::new();
    t.file("/etc/passwd", Arc::new(PASSWD.as_bytes().to_vec()), 0o644)?;
    t.file("/etc/group", Arc::new(GROUP.as_bytes().to_vec()), 0o644)?;
    t.file("/etc/nsswitch.conf", Arc::new(NSSWITCH.as_bytes().to_vec()), 0o644)?;
    t.file(CA_PATH, ca_bundle, 0o644)?;
    t.dir("/tmp", 0o1777, 0, 0)?;
    t.dir("/root", 0o700, 0, 0)?;
    t.dir("/home/nonroot", 0o700, NONROOT, NONROOT)?;
    Ok(t)
}

/// Rejects inputs that are plainly not a PEM certificate bundle (an empty file, a DER file,
/// a directory listing), since the image would then fail every TLS connection at run time.
pub fn check_ca_bundle(bytes: &[u8]) -> bool {
    bytes.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----")
}
