//! A real SMTP server for the email tests: aiosmtpd (Debian's
//! python3-aiosmtpd) writing every message it accepts to a maildir, and
//! the messages read back.
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

pub const PYTHON: &str = "/usr/bin/python3";

/// aiosmtpd writing every message it accepts to a maildir. Killed on drop.
pub struct Smtp {
    child: Child,
    pub port: u16,
    root: tempfile::TempDir,
}

impl Smtp {
    pub fn start() -> Smtp {
        let probe = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            matches!(probe, Ok(s) if s.success()),
            "the email tests need a real SMTP server: `{PYTHON} -c 'import aiosmtpd'` failed; \
             install python3-aiosmtpd (apt-get install python3-aiosmtpd)"
        );
        let mut last_log = String::new();
        // The port is free when chosen; another process may take it before
        // aiosmtpd binds it, so a server that exits at once is started again.
        for _ in 0..5 {
            let root = tempfile::tempdir().expect("tempdir");
            let maildir = root.path().join("mail");
            let log_path = root.path().join("aiosmtpd.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let port = super::free_port();
            let mut child = Command::new(PYTHON)
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .env_remove("PYTHONPATH")
                .env_remove("PYTHONHOME")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start aiosmtpd");
            let deadline = Instant::now() + Duration::from_secs(15);
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            loop {
                if child.try_wait().unwrap().is_some() {
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() && maildir.join("new").is_dir()
                {
                    return Smtp { child, port, root };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "aiosmtpd did not listen on {addr} within 15 s: {}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("aiosmtpd would not start: {last_log}");
    }

    pub fn maildir(&self) -> PathBuf {
        self.root.path().join("mail")
    }

    /// Every message delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(self.maildir().join("new"))
            .expect("maildir new/")
            .map(|e| e.unwrap().path())
            .map(|p| (std::fs::metadata(&p).and_then(|m| m.modified()).unwrap(), p))
            .collect();
        files.sort();
        files.into_iter().map(|(_, p)| Mail::parse(&std::fs::read_to_string(&p).expect("read a message"))).collect()
    }

    /// Wait until `n` messages arrived; returns them.
    pub async fn wait_messages(&self, n: usize, what: &str) -> Vec<Mail> {
        let deadline = Instant::now() + WAIT;
        loop {
            let mails = self.messages();
            if mails.len() >= n {
                return mails;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}: {} message(s) arrived: {mails:#?}", mails.len());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An email message: unfolded headers and the raw body.
#[derive(Debug, Clone)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        Mail { headers, body: body.to_string() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn must(&self, name: &str) -> &str {
        self.header(name).unwrap_or_else(|| panic!("no {name} header in {:#?}", self.headers))
    }

    /// The leaf parts: (content type, decoded text).
    pub fn parts(&self) -> Vec<(String, String)> {
        let ctype = self.header("content-type").unwrap_or("text/plain").to_string();
        if !ctype.to_ascii_lowercase().starts_with("multipart/") {
            let cte = self.header("content-transfer-encoding").unwrap_or("7bit");
            return vec![(ctype, decode_body(&self.body, cte))];
        }
        let boundary = param(&ctype, "boundary").unwrap_or_else(|| panic!("no boundary in {ctype}"));
        let open = format!("--{boundary}");
        let mut parts = Vec::new();
        let mut current: Option<Vec<&str>> = None;
        for line in self.body.lines() {
            if line.trim_end() == open || line.trim_end() == format!("{open}--") {
                if let Some(lines) = current.take() {
                    parts.extend(Mail::parse(&lines.join("\n")).parts());
                }
                if line.trim_end() == open {
                    current = Some(Vec::new());
                }
            } else if let Some(lines) = current.as_mut() {
                lines.push(line);
            }
        }
        parts
    }

    /// The decoded text of the first part of this type.
    pub fn part(&self, ctype: &str) -> String {
        let parts = self.parts();
        parts
            .iter()
            .find(|(t, _)| t.to_ascii_lowercase().starts_with(ctype))
            .map(|(_, text)| text.clone())
            .unwrap_or_else(|| panic!("no {ctype} part in {parts:#?}"))
    }
}

/// A parameter of a header value like `multipart/alternative; boundary="x"`.
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_string())
    })
}

fn decode_body(body: &str, cte: &str) -> String {
    match cte.trim().to_ascii_lowercase().as_str() {
        "base64" => String::from_utf8_lossy(&base64_decode(body)).into_owned(),
        "quoted-printable" => String::from_utf8_lossy(&qp_decode(body)).into_owned(),
        _ => body.to_string(),
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn qp_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2; // soft line break
                continue;
            }
            if let Some(hex) = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())
                && let Ok(b) = u8::from_str_radix(hex, 16)
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}
