//! `ship deploy`: deploy REPO@sha256:<digest> on Railway and wait until it is healthy, or notify
//! a deploy webhook.

use super::{Context, print_json};
use crate::Error;
use crate::cli::DeployCommand;
use crate::deploy::{self, Target};
use crate::registry::Reference;
use crate::settings::{self, Deployer};

/// Deploy `target` as `deployer` says; progress to stderr.
pub fn step(ctx: &Context, deployer: &Deployer, target: &Target) -> Result<deploy::Report, Error> {
    Ok(match deployer {
        Deployer::Railway(r) => {
            ctx.report.step(format!(
                "deploying {} on Railway (service {}, environment {}, token from {})",
                target.image(),
                r.service,
                r.environment,
                r.auth.source()
            ));
            deploy::railway::deploy(r, target, &|m| ctx.report.step(m))?
        }
        Deployer::Webhook(url) => {
            ctx.report.step(format!("notifying the deploy webhook of {}", target.image()));
            deploy::webhook::notify(url, target, &crate::net::Timeouts::default())?
        }
    })
}

pub fn run(ctx: &Context, cmd: &DeployCommand) -> Result<(), Error> {
    let reference = Reference::parse(&cmd.reference)?;
    let target = Target::new(reference.clone(), cmd.revision.clone())?;
    let deployer = settings::deploy(cmd, &ctx.loaded, &reference.registry)?
        .ok_or(deploy::Error::Missing { what: "service (or deploy webhook)" })?;
    let report = step(ctx, &deployer, &target)?;
    if cmd.json {
        print_json(&report);
    } else {
        println!("{}", report.deployment_id.as_deref().unwrap_or(&report.image));
    }
    Ok(())
}
