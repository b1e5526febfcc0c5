//! docker-archive: the `docker save` tarball that `docker load` and `podman load` read.
//!
//! Layers go in uncompressed as `<diff_id hex>/layer.tar`, the form every loader accepts; the
//! config as `<config hex>.json`; `manifest.json` ties them to the repository tag. The tarball
//! is written beside the target and renamed into place when complete. Layers are streamed from
//! their blobs, so memory stays flat however large the binary is.

use super::{Error, Image, digest};
use serde_json::json;
use std::path::Path;

const TMP_PREFIX: &str = ".ship-archive-";

pub fn write(image: &Image, file: &Path, repo_tag: &str) -> Result<(), Error> {
    let out_err = |source: std::io::Error| Error::Output { path: file.to_path_buf(), source };
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if file.is_dir() {
        return Err(out_err(std::io::Error::other("it is a directory")));
    }
    // Archives an interrupted or killed ship left in this directory: their lock is free.
    crate::cleanup::sweep(dir, &[TMP_PREFIX]);
    let (tmp, _interrupt) = crate::cleanup::temp_file_in(dir, TMP_PREFIX).map_err(out_err)?;
    // Held while writing, so that a sweep by another ship leaves this file alone.
    tmp.as_file().lock().map_err(out_err)?;
    // Large writes: 8 KiB ones cost more in syscalls than the rest of the archive.
    let mut builder = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, tmp));
    let header = || {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(0);
        h
    };
    let add = |builder: &mut tar::Builder<_>, path: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = header();
        h.set_size(data.len() as u64);
        builder.append_data(&mut h, path, data)
    };
    let config_name = format!("{}.json", digest::hex_part(&image.config_digest).expect("own digest"));
    let mut layer_names = Vec::new();
    let result = (|| -> Result<(), Error> {
        add(&mut builder, &config_name, &image.config).map_err(out_err)?;
        for layer in &image.layers {
            let name = format!("{}/layer.tar", digest::hex_part(&layer.diff_id).expect("own digest"));
            if !layer_names.contains(&name) {
                // Streamed from the blob, decompressed and checked against the diff_id on the
                // way: memory does not grow with the layer.
                let mut h = header();
                let mut entry = builder.append_writer(&mut h, &name).map_err(out_err)?;
                layer.copy_tar(&mut entry)?;
                entry.finish().map_err(out_err)?;
            }
            layer_names.push(name);
        }
        let manifest = json!([{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]);
        add(&mut builder, "manifest.json", &serde_json::to_vec(&manifest).expect("JSON")).map_err(out_err)?;
        Ok(())
    })();
    result?;
    let tmp = builder.into_inner().map_err(out_err)?.into_inner().map_err(|e| out_err(e.into_error()))?;
    tmp.as_file().sync_all().map_err(out_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(out_err)?;
    }
    crate::cleanup::commit(|| {
        tmp.persist(file).map_err(|e| out_err(e.error))?;
        drop(_interrupt);
        Ok::<_, Error>(())
    })?;
    Ok(())
}
