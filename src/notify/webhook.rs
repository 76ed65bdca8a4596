//! Webhook delivery: the rendered JSON body, an `Idempotency-Key`, and when
//! a secret is set an HMAC-SHA256 signature over `timestamp + "." + body`
//! (`X-Alertgate-Timestamp`, `X-Alertgate-Signature: sha256=<hex>`), so a
//! receiver can check the sender and refuse replays.
use hmac::{KeyInit, Mac};

use super::config::WebhookSettings;
use super::{Delivery, Notifier, Outcome};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// `sha256=<hex>` of HMAC-SHA256(secret, timestamp + "." + body).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// How an HTTP status answers a delivery.
pub fn classify(status: reqwest::StatusCode) -> Outcome {
    let code = status.as_u16();
    match code {
        200..=299 => Outcome::Sent,
        408 | 429 => Outcome::Transient(format!("receiver answered {status}")),
        400..=499 => Outcome::Permanent(format!("receiver refused with {status}")),
        _ => Outcome::Transient(format!("receiver answered {status}")),
    }
}

pub async fn send(n: &Notifier, w: &WebhookSettings, d: &Delivery, http: &reqwest::Client) -> Outcome {
    let body = match n.templates.render("body", &d.context_for(n)) {
        Ok(b) => b,
        Err(e) => return Outcome::Permanent(format!("the body template failed: {e}")),
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&body) {
        return Outcome::Permanent(format!("the body template rendered invalid JSON: {e}"));
    }
    let mut req = http
        .request(w.method.clone(), w.url.clone())
        .timeout(n.timeout.signed().unsigned_abs())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", d.idempotency_key())
        .header("User-Agent", concat!("alertgate/", env!("CARGO_PKG_VERSION")));
    for (k, v) in &w.headers {
        req = req.header(k, v);
    }
    if let Some(secret) = &w.secret {
        let now = crate::clock::now().as_second();
        req = req
            .header("X-Alertgate-Timestamp", now.to_string())
            .header("X-Alertgate-Signature", signature(secret.expose(), now, body.as_bytes()));
    }
    match req.body(body).send().await {
        Ok(resp) => classify(resp.status()),
        // The URL may carry credentials; reqwest's error text names it.
        Err(e) if e.is_timeout() => Outcome::Transient(format!("no answer within {}", n.timeout)),
        Err(e) if e.is_connect() => Outcome::Transient("cannot connect to the receiver".into()),
        Err(e) => Outcome::Transient(format!("request failed: {}", e.without_url())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe"; our message is "ts.body".
        let sig = signature("Jefe", 1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64, "{sig}");
        assert_eq!(sig, signature("Jefe", 1_700_000_000, b"{\"a\":1}"), "deterministic");
        assert_ne!(sig, signature("Jefe", 1_700_000_001, b"{\"a\":1}"), "the timestamp is signed");
        assert_ne!(sig, signature("jefe", 1_700_000_000, b"{\"a\":1}"));
        // Known answer, computed independently with Python's hmac module.
        assert_eq!(
            signature("what do ya want for nothing?", 0, b""),
            "sha256=d4b0704ca5d48dbc22a17ee5e8431fea89a610c3857ed2ba1f9ffabf5cc2a5a8"
        );
    }

    #[test]
    fn statuses_classify_as_the_issue_says() {
        use reqwest::StatusCode as S;
        assert_eq!(classify(S::OK), Outcome::Sent);
        assert_eq!(classify(S::NO_CONTENT), Outcome::Sent);
        assert!(matches!(classify(S::REQUEST_TIMEOUT), Outcome::Transient(_)));
        assert!(matches!(classify(S::TOO_MANY_REQUESTS), Outcome::Transient(_)));
        assert!(matches!(classify(S::BAD_REQUEST), Outcome::Permanent(_)));
        assert!(matches!(classify(S::NOT_FOUND), Outcome::Permanent(_)));
        assert!(matches!(classify(S::BAD_GATEWAY), Outcome::Transient(_)));
        assert!(matches!(classify(S::MOVED_PERMANENTLY), Outcome::Transient(_)));
    }
}
