//! `ship pull`: fetch an image into an OCI layout (every blob verified); print its digest.

use super::{Context, steps};
use crate::Error;
use crate::cleanup;
use crate::cli::PullCommand;
use crate::registry::{self, Reference};
use crate::settings::parse;

pub fn run(ctx: &Context, cmd: &PullCommand) -> Result<(), Error> {
    let reference = Reference::parse(&cmd.reference)?;
    let (dir, tag) = parse::parse_layout_ref("--output", &cmd.output)?;
    let platform = parse::parse_platform(cmd.platform.as_deref())?;
    let client = steps::registry_client(ctx, &reference, &cmd.registry)?;
    ctx.report.step(format!(
        "pulling {reference} ({}/{}), credentials: {}",
        platform.os,
        platform.architecture,
        client.credentials.source.describe()
    ));
    let staging = tempfile::tempdir()
        .map_err(|e| registry::Error::Io { context: "making a staging directory".into(), source: e })?;
    let _interrupt = cleanup::tree(staging.path());
    // Blobs the layout already has (whole) are not downloaded again.
    let have = dir.join("blobs/sha256");
    let image = registry::pull::pull_reusing(&client, &reference, &platform, staging.path(), Some(&have))?;
    crate::image::layout::write(&image, &dir, &tag, &|m| ctx.report.step(m))?;
    ctx.report.step(format!(
        "wrote oci:{}:{tag} ({} layers, {} requests)",
        dir.display(),
        image.layers.len(),
        client.stats.requests.load(std::sync::atomic::Ordering::Relaxed)
    ));
    println!("{}", image.manifest_digest);
    Ok(())
}
