//! Reaching the gateway: the base URL as people type it, errors that name
//! their cause, and the check that the server answering is alertgate.
use std::error::Error as _;
use std::io::ErrorKind;

use crate::api::VERSION_HEADER;

/// How long a client command waits for an answer.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `--url` as given: `127.0.0.1:9797` means `http://127.0.0.1:9797`; a
/// trailing `/` is dropped.
pub fn base_url(raw: &str) -> String {
    let url = raw.trim().trim_end_matches('/');
    if url.contains("://") { url.to_owned() } else { format!("http://{url}") }
}

/// The error of a request that got no answer, naming the URL and the cause
/// (reqwest's own message hides it: "error sending request for url").
pub fn unreachable(base: &str, e: &reqwest::Error) -> anyhow::Error {
    anyhow::anyhow!("cannot reach the gateway at {base}: {}", cause(e))
}

fn cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", TIMEOUT.as_secs());
    }
    let mut innermost = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                ErrorKind::ConnectionRefused => "connection refused (is alertgate running and listening there?)".into(),
                ErrorKind::ConnectionReset => "connection reset by the server".into(),
                ErrorKind::TimedOut => "connection timed out".into(),
                _ => io.to_string(),
            };
        }
        innermost = s.to_string();
        source = s.source();
    }
    innermost
}

/// Every alertgate answer carries `X-Alertgate-Version`; one without it
/// comes from some other server (an Alertmanager or Prometheus on the port
/// given, a proxy's error page), whose answer must not be read as an empty
/// list.
pub fn check_alertgate(base: &str, resp: &reqwest::Response) -> anyhow::Result<()> {
    if resp.headers().contains_key(VERSION_HEADER) {
        return Ok(());
    }
    let server = resp
        .headers()
        .get(reqwest::header::SERVER)
        .and_then(|v| v.to_str().ok())
        .map(|s| format!(", Server: {s}"))
        .unwrap_or_default();
    anyhow::bail!(
        "{base} is not an alertgate gateway: its answer ({}{server}) has no {VERSION_HEADER} header; \
         check --url or ALERTGATE_URL (alertgate listens on 127.0.0.1:9797 by default)",
        resp.status()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_scheme_is_http() {
        assert_eq!(base_url("127.0.0.1:9797"), "http://127.0.0.1:9797");
        assert_eq!(base_url("localhost:9797/"), "http://localhost:9797");
        assert_eq!(base_url("https://alertgate.example.org/"), "https://alertgate.example.org");
        assert_eq!(base_url(" http://[::1]:9797 "), "http://[::1]:9797");
    }
}
