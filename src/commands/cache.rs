//! `ship cache`: set up, describe and prune the sccache S3 bucket.

use super::{Context, print_json};
use crate::Error;
use crate::cache;
use crate::cli::CacheCommand;
use crate::report::human_bytes;
use crate::settings;

pub fn run(ctx: &Context, cmd: CacheCommand) -> Result<(), Error> {
    use CacheCommand as C;
    let loaded = &ctx.loaded;
    match cmd {
        C::Init { s3, expire_days, noncurrent_days, versioning } => {
            let s = settings::cache(&s3, loaded)?;
            let changed = cache::init(&s, expire_days, noncurrent_days, versioning)?;
            if changed.is_empty() {
                eprintln!("bucket {} is already set up; nothing changed", s.bucket);
            }
            for c in changed {
                println!("{c}");
            }
        }
        C::Policy { s3 } => {
            let s = settings::cache(&s3, loaded)?;
            print_json(&cache::policy(&s.bucket, &s.prefix));
        }
        C::Stats {
            s3,
            storage_price,
            put_price,
            get_price,
            builds_per_month,
            puts_per_build,
            gets_per_build,
            json,
        } => {
            let s = settings::cache(&s3, loaded)?;
            let prices = cache::Prices {
                storage_gb_month: storage_price,
                put_per_1000: put_price,
                get_per_1000: get_price,
                builds_per_month,
                puts_per_build,
                gets_per_build,
            };
            let st = cache::stats(&s, prices)?;
            if json {
                print_json(&st);
            } else {
                println!("bucket:   {} (prefix {:?})", st.bucket, st.prefix);
                println!("objects:  {} ({})", st.objects, human_bytes(st.bytes));
                match (st.noncurrent_objects, st.noncurrent_bytes) {
                    (Some(n), Some(b)) => {
                        println!("old versions: {n} ({}), counted in the storage cost", human_bytes(b))
                    }
                    _ => println!("old versions: unknown (the store cannot list versions)"),
                }
                println!("oldest:   {}", st.oldest.as_deref().unwrap_or("-"));
                println!("newest:   {}", st.newest.as_deref().unwrap_or("-"));
                for (p, v) in &st.by_prefix {
                    println!("  {p:<40} {:>8} objects {:>10}", v.objects, human_bytes(v.bytes));
                }
                let pr = &st.prices;
                println!(
                    "estimated monthly cost: ${:.2} (storage ${:.2} at ${}/GB-month; requests ${:.2} for {} builds x ({} PUT at ${}/1000 + {} GET at ${}/1000))",
                    st.monthly_cost_total,
                    st.monthly_cost_storage,
                    pr.storage_gb_month,
                    st.monthly_cost_requests,
                    pr.builds_per_month,
                    pr.puts_per_build,
                    pr.put_per_1000,
                    pr.gets_per_build,
                    pr.get_per_1000
                );
            }
        }
        C::Prune { s3, older_than, dry_run, json } => {
            let s = settings::cache(&s3, loaded)?;
            let age = cache::parse_duration(&older_than)?;
            let r = cache::prune(&s, age, super::now(), dry_run)?;
            if json {
                print_json(&r);
            } else {
                let verb = if dry_run { "would delete" } else { "deleted" };
                println!(
                    "{verb} {} objects ({}) older than {older_than}; kept {}",
                    r.deleted.len(),
                    human_bytes(r.bytes),
                    r.kept
                );
            }
        }
    }
    Ok(())
}
