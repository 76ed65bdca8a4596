//! Email delivery over SMTP (lettre, rustls). Each message's `Message-ID`
//! is derived from its idempotency key, so a receiver (or a mail archive)
//! can drop the duplicate an at-least-once retry may produce; every message
//! about an incident refers to the incident's thread root (`In-Reply-To`,
//! `References`), so mail clients thread them.
use lettre::message::{MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{EmailSettings, SmtpTls};
use super::{Delivery, Notifier, Outcome};

/// The domain part of message ids: the sender's.
fn domain(e: &EmailSettings) -> String {
    e.from.email.domain().to_owned()
}

/// The thread root of an incident's messages for one notifier.
pub fn thread_root(incident_id: i64, notifier: &str, domain: &str) -> String {
    format!("<incident-{incident_id}.{notifier}@{domain}>")
}

/// Build the message; an error here is permanent (a template or address problem).
pub fn build(n: &Notifier, e: &EmailSettings, d: &Delivery) -> Result<Message, String> {
    let ctx = d.context_for(n);
    let subject = n.templates.render("subject", &ctx).map_err(|err| format!("the subject template failed: {err}"))?;
    // A subject is one line.
    let subject: String = subject.lines().next().unwrap_or_default().trim().to_owned();
    let text = n.templates.render("text", &ctx).map_err(|err| format!("the text template failed: {err}"))?;
    let html = n.templates.render("html", &ctx).map_err(|err| format!("the html template failed: {err}"))?;
    let domain = domain(e);
    let root = d.incident_id().map(|id| thread_root(id, &n.name, &domain));
    let opens_thread = !d.is_digest() && d.items[0].event == "incident.triggered";
    let message_id = match (&root, opens_thread) {
        (Some(root), true) => root.clone(),
        _ => format!("<{}@{domain}>", d.idempotency_key()),
    };
    let mut b = Message::builder().from(e.from.clone()).subject(subject).message_id(Some(message_id));
    // A page to a person goes to their address only, not the notifier's list.
    match d.recipient().and_then(|r| r.email) {
        Some(address) => {
            let to = address.parse().map_err(|err| format!("{address:?} is not an email address: {err}"))?;
            b = b.to(lettre::message::Mailbox::new(None, to));
        }
        None => {
            for to in &e.to {
                b = b.to(to.clone());
            }
        }
    }
    if let (Some(root), false) = (&root, opens_thread) {
        b = b.in_reply_to(root.clone()).references(root.clone());
    }
    b = b.header(header::UserAgent::from(concat!("alertgate/", env!("CARGO_PKG_VERSION")).to_owned()));
    b.multipart(MultiPart::alternative_plain_html(text, html)).map_err(|err| format!("cannot build the message: {err}"))
}

pub fn transport(n: &Notifier, e: &EmailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match e.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&e.host),
        SmtpTls::StartTls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&e.host).map_err(|err| format!("smtp: {err}"))?
        }
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&e.host).map_err(|err| format!("smtp: {err}"))?,
    };
    let mut builder = builder.port(e.port).timeout(Some(n.timeout.signed().unsigned_abs()));
    if let Some((user, password)) = &e.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    Ok(builder.build())
}

pub async fn send(n: &Notifier, e: &EmailSettings, d: &Delivery) -> Outcome {
    let message = match build(n, e, d) {
        Ok(m) => m,
        Err(err) => return Outcome::Permanent(err),
    };
    let transport = match transport(n, e) {
        Ok(t) => t,
        Err(err) => return Outcome::Permanent(err),
    };
    match transport.send(message).await {
        Ok(_) => Outcome::Sent,
        Err(err) if err.is_permanent() => Outcome::Permanent(format!("the SMTP server refused: {err}")),
        Err(err) => Outcome::Transient(format!("SMTP delivery failed: {err}")),
    }
}
