//! The bounds on every network call ship makes (registry, S3, Railway), and the words for the
//! ways a call fails: which bound expired, or what refused the connection.

use std::time::{Duration, Instant};

/// Connect, per-request and overall bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a TCP (and TLS) connection.
    pub connect: Duration,
    /// One request, from sending it to the end of its answer: long enough for a 4 MiB chunk on
    /// a slow link.
    pub request: Duration,
    /// The whole command's network work, retries and back-off included (`--timeout`).
    pub overall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(60),
            overall: Duration::from_secs(600),
        }
    }
}

impl Timeouts {
    /// The defaults with `--timeout` and `--request-timeout` applied; a request never gets
    /// longer than the overall deadline.
    pub fn with(overall: Option<Duration>, request: Option<Duration>) -> Timeouts {
        let mut t = Timeouts::default();
        if let Some(o) = overall {
            t.overall = o;
        }
        if let Some(r) = request {
            t.request = r;
        }
        t.request = t.request.min(t.overall);
        t.connect = t.connect.min(t.request);
        t
    }
}

/// `90 s`, `10 min`, `1.5 s`: how a bound is named in an error.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 120.0 && d.as_secs().is_multiple_of(60) {
        format!("{} min", d.as_secs() / 60)
    } else if s.fract() == 0.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s:.1} s")
    }
}

/// `30s`, `10m`, `2h`, `1d` (or a bare number of seconds) as a duration.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(mult).map(Duration::from_secs)
}

/// The overall deadline of one command's network work.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Instant,
    pub overall: Duration,
}

impl Deadline {
    pub fn start(overall: Duration) -> Deadline {
        Deadline { end: Instant::now() + overall, overall }
    }

    /// Time left, or None once it has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.end.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }
}

/// Why a request failed, in words a user can act on: which bound expired, or what refused.
/// Works on the whole cause chain, because HTTP clients wrap the I/O error several times.
pub fn describe(err: &(dyn std::error::Error + 'static), t: &Timeouts) -> String {
    let chain: Vec<String> = causes(err).map(|e| e.to_string()).collect();
    let all = chain.join(": ").to_ascii_lowercase();
    let io_kind = causes(err).find_map(|e| e.downcast_ref::<std::io::Error>().map(std::io::Error::kind));
    use std::io::ErrorKind as K;
    if all.contains("connect timeout") || (all.contains("timed out") && all.contains("connect")) {
        return format!("timed out connecting (connect timeout {})", human_duration(t.connect));
    }
    if all.contains("read timeout") {
        return format!("timed out waiting for an answer (read timeout {})", human_duration(t.request));
    }
    if all.contains("timed out") || all.contains("timeout") || io_kind == Some(K::TimedOut) {
        return format!("timed out: no complete answer within {} (the per-request timeout)", human_duration(t.request));
    }
    if io_kind == Some(K::ConnectionRefused) || all.contains("connection refused") {
        return "connection refused (nothing listens there)".into();
    }
    if io_kind == Some(K::ConnectionReset) || all.contains("connection reset") {
        return "the connection was reset by the other side".into();
    }
    if all.contains("dns error")
        || all.contains("failed to lookup address")
        || all.contains("name or service not known")
    {
        return format!("DNS lookup failed ({})", chain.last().cloned().unwrap_or_default());
    }
    if all.contains("certificate") || all.contains("tls") || all.contains("handshake") {
        return format!("TLS failed ({})", chain.last().cloned().unwrap_or_default());
    }
    if io_kind == Some(K::UnexpectedEof) || all.contains("connection closed") || all.contains("incomplete message") {
        return "the connection was closed before the answer was complete".into();
    }
    chain.last().cloned().unwrap_or_else(|| err.to_string())
}

fn causes<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source())
}

/// scheme://host[:port] of a URL: where credentials may go.
pub fn origin(url: &url::Url) -> (String, Option<String>, Option<u16>) {
    (url.scheme().to_string(), url.host_str().map(str::to_ascii_lowercase), url.port_or_known_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        for bad in ["", "m", "1w", "-3s", "1.5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(human_duration(Duration::from_secs(600)), "10 min");
        assert_eq!(human_duration(Duration::from_secs(60)), "60 s");
        assert_eq!(human_duration(Duration::from_secs(90)), "90 s");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn a_request_never_outlives_the_deadline() {
        let t = Timeouts::with(Some(Duration::from_secs(5)), None);
        assert_eq!(
            (t.overall, t.request, t.connect),
            (Duration::from_secs(5), Duration::from_secs(5), Duration::from_secs(5))
        );
        assert_eq!(Timeouts::with(None, None), Timeouts::default());
    }

    #[test]
    fn causes_are_named() {
        let t = Timeouts::default();
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(describe(&refused, &t), "connection refused (nothing listens there)");
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "operation timed out");
        assert!(describe(&timed_out, &t).starts_with("timed out"));
        let read = std::io::Error::other("HTTP read timeout occurred after 2s");
        assert_eq!(describe(&read, &t), "timed out waiting for an answer (read timeout 60 s)");
    }
}
