//! The report of a `ship run`: the versioned JSON document (`--json`) and the Markdown summary
//! appended to `$GITHUB_STEP_SUMMARY` in GitHub Actions.

use serde::Serialize;

/// The version of the JSON run report; bumped when a field changes meaning or goes away.
pub const SCHEMA: u32 = 1;

/// One step of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub duration_ms: u128,
    /// One line for people: what the step produced.
    pub summary: String,
    /// Everything the step knows, for machines.
    pub facts: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub schema: u32,
    pub ok: bool,
    pub steps: Vec<Step>,
    /// The step that failed, and its error sentence.
    pub failed: Option<Failure>,
    pub digest: Option<String>,
    /// `REGISTRY/REPO@sha256:...` when pushed.
    pub reference: Option<String>,
    pub tags: Vec<String>,
    /// `oci:DIR:TAG` and the docker-archive, when not pushed.
    pub layout: Option<String>,
    pub archive: Option<String>,
    /// The Railway deployment's id and final status (or the webhook's acceptance).
    pub deployment: Option<Deployment>,
    pub duration_ms: u128,
}

#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub id: Option<String>,
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub step: &'static str,
    pub error: String,
}

impl RunReport {
    pub fn new() -> Self {
        RunReport {
            schema: SCHEMA,
            ok: false,
            steps: Vec::new(),
            failed: None,
            digest: None,
            reference: None,
            tags: Vec::new(),
            layout: None,
            archive: None,
            deployment: None,
            duration_ms: 0,
        }
    }

    /// The Markdown for a GitHub step summary.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let outcome = match (&self.failed, &self.digest) {
            (Some(f), _) => format!("failed at {}", f.step),
            (None, Some(d)) => format!("`{}`", &d[..d.len().min(19)]),
            (None, None) => "done".into(),
        };
        md.push_str(&format!("### ship run: {outcome}\n\n| step | duration | result |\n|---|---:|---|\n"));
        for s in &self.steps {
            md.push_str(&format!(
                "| {} | {:.1} s | {} |\n",
                s.name,
                s.duration_ms as f64 / 1000.0,
                s.summary.replace('|', "\\|")
            ));
        }
        if let Some(f) = &self.failed {
            md.push_str(&format!("| {} | | **failed**: {} |\n", f.step, f.error.replace('|', "\\|")));
        }
        md.push('\n');
        if let Some(d) = &self.digest {
            md.push_str(&format!("- digest: `{d}`\n"));
        }
        if let Some(r) = &self.reference {
            md.push_str(&format!("- pushed: `{r}`\n"));
        }
        if !self.tags.is_empty() {
            let tags: Vec<String> = self.tags.iter().map(|t| format!("`{t}`")).collect();
            md.push_str(&format!("- tags: {}\n", tags.join(", ")));
        }
        if let Some(l) = &self.layout {
            md.push_str(&format!("- layout: `{l}`\n"));
        }
        if let Some(d) = &self.deployment {
            md.push_str(&format!(
                "- deployment: {} ({})\n",
                d.id.as_deref().unwrap_or("via webhook"),
                d.status.as_deref().unwrap_or("unknown")
            ));
        }
        if let Some(a) = &self.archive {
            md.push_str(&format!("- docker-archive: `{a}`\n"));
        }
        md.push_str(&format!("- total: {:.1} s\n\n", self.duration_ms as f64 / 1000.0));
        md
    }
}

impl Default for RunReport {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_has_every_step_and_the_result() {
        let mut r = RunReport::new();
        r.steps.push(Step { name: "build", duration_ms: 1500, summary: "a | b".into(), facts: serde_json::json!({}) });
        r.digest = Some(format!("sha256:{}", "a".repeat(64)));
        r.reference = Some("r/x@sha256:aa".into());
        r.tags = vec!["latest".into()];
        let md = r.markdown();
        assert!(md.contains("| build | 1.5 s | a \\| b |"), "{md}");
        assert!(md.contains("- pushed: `r/x@sha256:aa`") && md.contains("- tags: `latest`"), "{md}");
    }
}
