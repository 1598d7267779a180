//! Test counterparts for delivery: a real SMTP server (aiosmtpd, started per test),
//! and readers for the messages it (or the outbox) received.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running aiosmtpd that writes each message it accepts to `dir`.
pub struct SmtpSink {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The CA that signed the server's certificate, when it offers STARTTLS.
    pub ca: Option<PathBuf>,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with the openssl CLI.
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    // A fresh P-256 key and a one-day certificate, self-signed or signed by the CA.
    let request = |subject: &str, key: &str, cert: &str, extra: &[&str]| {
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            subject,
            "-keyout",
            key,
            "-out",
            cert,
        ];
        args.extend_from_slice(extra);
        run(&args);
    };
    request(
        "/CN=Latchkey test CA",
        "ca.key",
        "ca.pem",
        &["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
    );
    request(
        "/CN=127.0.0.1",
        "server.key",
        "server.pem",
        &[
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ],
    );
    (dir.join("ca.pem"), dir.join("server.pem"), dir.join("server.key"))
}

impl SmtpSink {
    /// Starts the server; with `starttls` it requires STARTTLS, with `auth`
    /// (`user:password`) it requires authentication.
    pub fn start(starttls: bool, auth: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mut command = Command::new("python3");
        command.arg(script).arg("--port").arg(port.to_string()).arg("--dir").arg(dir.path());
        let mut ca = None;
        if starttls {
            let (ca_file, cert, key) = make_certificates(dir.path());
            command.arg("--cert").arg(cert).arg("--key").arg(key);
            ca = Some(ca_file);
        }
        if let Some(auth) = auth {
            command.arg("--auth").arg(auth);
        }
        let mut child =
            command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("python3 runs");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line)
            .unwrap();
        assert_eq!(line.trim(), "READY", "the SMTP sink did not start (pip install aiosmtpd?)");
        Self { port, dir, ca, child }
    }

    /// The `smtp://` URL of this server for Latchkey's configuration.
    pub fn url(&self, credentials: Option<&str>) -> String {
        let tls = if self.ca.is_some() { "" } else { "?tls=none" };
        match credentials {
            Some(credentials) => format!("smtp://{credentials}@127.0.0.1:{}{tls}", self.port),
            None => format!("smtp://127.0.0.1:{}{tls}", self.port),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A received message, with quoted-printable soft breaks and escapes undone.
#[derive(Debug, Clone)]
pub struct Mail {
    pub text: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.text
            .lines()
            .map_while(|l| (!l.is_empty()).then_some(l))
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    /// The six-digit code after "verification code is".
    pub fn code(&self) -> String {
        let at = self.text.find("verification code is").expect("a code message");
        let rest = &self.text[at..];
        let start = rest.find(|c: char| c.is_ascii_digit()).unwrap();
        rest[start..start + 6].to_owned()
    }

    /// The magic link in the message.
    pub fn link(&self) -> String {
        let start = self.text.find("http").expect("a link");
        let end = self.text[start..].find(|c: char| c.is_whitespace() || c == '"' || c == '<').unwrap();
        self.text[start..start + end].to_owned()
    }
}

fn decode_quoted_printable(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every message in `dir` (oldest first).
pub fn messages(dir: &Path) -> Vec<Mail> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.retain(|name| name.ends_with(".eml") && !name.starts_with('.'));
    names.sort_by_key(|name| (name.len(), name.clone()));
    names
        .iter()
        .filter_map(|name| std::fs::read_to_string(dir.join(name)).ok())
        .map(|raw| Mail { text: decode_quoted_printable(&raw) })
        .collect()
}

/// Waits (up to 20 s) until `dir` holds at least `count` messages to `to`; returns them.
pub async fn wait_for(dir: &Path, to: &str, count: usize) -> Vec<Mail> {
    for _ in 0..400 {
        let found: Vec<Mail> =
            messages(dir).into_iter().filter(|m| m.header("To").is_some_and(|t| t.contains(to))).collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no message {count} to {to} in {}", dir.display());
}

/// The newest message to `to` once there are `count`.
pub async fn nth(dir: &Path, to: &str, count: usize) -> Mail {
    wait_for(dir, to, count).await.swap_remove(count - 1)
}
