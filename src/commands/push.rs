//! `ship push`: push an image from an OCI layout; print REF@sha256:<digest>.

use super::{Context, print_json, steps};
use crate::Error;
use crate::cli::PushCommand;
use crate::registry::{self, Reference};
use crate::settings::{self, parse};

pub fn run(ctx: &Context, cmd: &PushCommand) -> Result<(), Error> {
    let reference = Reference::parse(&cmd.reference)?;
    let (dir, tag) = parse::parse_layout_ref("--from", &cmd.from)?;
    // Every flag is checked before any work.
    parse::timeouts(cmd.upload.registry.timeout.as_deref(), cmd.upload.registry.request_timeout.as_deref())?;
    let loaded = crate::image::layout::load_tagged(&dir, &tag)?;
    let what = match &loaded {
        crate::image::layout::Tagged::Image(i) => steps::Pushable::Image(i),
        crate::image::layout::Tagged::Index(m) => steps::Pushable::Index(m),
    };
    let digest = match &loaded {
        crate::image::layout::Tagged::Image(i) => &i.manifest_digest,
        crate::image::layout::Tagged::Index(m) => &m.index_digest,
    };
    if let Some(d) = &reference.digest
        && d != digest
    {
        return Err(settings::Error::BadValue {
            flag: "REF",
            value: cmd.reference.clone(),
            expected: "a digest equal to the image's (or no digest)",
        }
        .into());
    }
    // REF's tag (docker's `latest` when it names neither tag nor digest), then every --tag.
    let implied = reference.digest.is_none().then(|| reference.tag_or_latest().to_string());
    let mut tags: Vec<String> = reference.tag.clone().or(implied).into_iter().chain(cmd.tags.iter().cloned()).collect();
    tags.dedup();
    for t in &tags {
        if !registry::reference::is_valid_tag(t) {
            return Err(settings::Error::BadValue {
                flag: "--tag",
                value: t.clone(),
                expected: "a tag: 1-128 letters, digits, '_', '.' or '-'",
            }
            .into());
        }
    }
    let report =
        steps::push(ctx, what, &reference, tags, cmd.mount_from.clone(), &cmd.upload.registry, cmd.upload.concurrency)?;
    if cmd.json {
        print_json(&report);
    } else {
        println!("{}", report.reference);
    }
    Ok(())
}
