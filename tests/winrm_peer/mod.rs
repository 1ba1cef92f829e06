//! The pyspnego WinRM endpoint (tests/peers/winrm_ntlm_endpoint.py) as a child process, shared
//! by the NTLM and Kerberos interop tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cimrun::protocol::wsman::{HttpReply, Transport};
use cimrun::protocol::{AuthMechanism, Credential, Endpoint, ProtocolKind};
use secrecy::SecretString;

#[path = "../python/mod.rs"]
mod python;
// Not every test binary that includes this module starts a peer.
#[allow(unused_imports)]
pub use python::python;

/// Four recorded Windows Enumerate/Pull replies, answered in order.
pub fn pages() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/wsman/txwinrm/data/server_2012");
    (0..4).map(|i| dir.join(format!("Win32_Service_star_{i:03}.xml"))).collect()
}

/// A request body of a length that grows with `n`.
pub fn envelope(n: usize) -> String {
    // Varying lengths (multiples of a cipher block or not) and non-ASCII text exercise the
    // Length header and the ciphers.
    format!(
        "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body n=\"{n}\">{}é</s:Body></s:Envelope>",
        "x".repeat(n * 997)
    )
}

/// The running peer; killed (by its own handle) when dropped.
pub struct Peer {
    child: Child,
    pub port: u16,
    record: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    /// Starts the endpoint with `args` (before the pages) and extra environment, and waits for
    /// the port it prints.
    pub fn spawn(args: &[&str], env: &[(&str, &OsStr)], pages: &[PathBuf]) -> Peer {
        let record = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/winrm_ntlm_endpoint.py");
        let python = python();
        let mut child = Command::new(&python)
            .arg(script)
            .args(["--lifetime", "60"])
            .arg("--record-dir")
            .arg(record.path())
            .args(args)
            .args(pages)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the pyspnego peer with {}: {e} (set CIMRUN_PYTHON)", python.display())
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            let status = child.wait().unwrap();
            panic!(
                "the pyspnego peer did not start ({status}); are the packages of tests/peers/requirements.txt installed for {}?",
                python.display()
            )
        });
        Peer { child, port, record }
    }

    /// A WS-Man endpoint for this peer, reached as `computer`, with 5 s timeouts.
    pub fn endpoint_as(&self, computer: &str, mechanism: AuthMechanism, user: &str, password: &str) -> Endpoint {
        let mut e = Endpoint::local();
        e.protocol = ProtocolKind::WsMan;
        e.computer = Some(computer.into());
        e.port = Some(self.port);
        e.authentication = mechanism;
        e.credential = Some(Credential { username: user.into(), password: SecretString::from(password.to_string()) });
        e.connect_timeout = Duration::from_secs(5);
        e.operation_timeout = Duration::from_secs(5);
        e
    }

    /// Request `index` (0-based) as the peer unsealed it.
    pub fn recorded(&self, index: usize) -> Vec<u8> {
        std::fs::read(self.record.path().join(format!("request_{index:03}.xml"))).unwrap()
    }

    /// How the handshakes went: `bodies=N ignored=N failed=N connections=N` (requests that
    /// finished a handshake with a body the peer answered, such bodies it dropped as told,
    /// failed logons, connections accepted), as of the last handshake.
    pub fn handshakes(&self) -> String {
        std::fs::read_to_string(self.record.path().join("handshakes")).unwrap_or_default()
    }

    /// The mechanism each completed handshake used (`ntlm`, `kerberos`), one a line.
    pub fn mechanisms(&self) -> String {
        std::fs::read_to_string(self.record.path().join("mechanisms")).unwrap_or_default()
    }

    /// Sends [`envelope`] `i` for each of [`pages`] over `transport`: the peer must have
    /// unsealed each request byte for byte, and each reply must be its recorded page. Gives
    /// the replies back.
    pub async fn exchange_pages(&self, transport: &mut dyn Transport) -> Vec<HttpReply> {
        let mut replies = Vec::new();
        for (i, page) in pages().iter().enumerate() {
            let sent = envelope(i);
            let reply = transport.exchange(sent.clone()).await.unwrap();
            assert_eq!(reply.status, 200);
            assert_eq!(reply.body, std::fs::read(page).unwrap(), "page {i} differs");
            assert_eq!(self.recorded(i), sent.as_bytes(), "request {i} as the peer unsealed it");
            replies.push(reply);
        }
        replies
    }
}
