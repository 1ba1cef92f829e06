//! Interop: cimrun's WS-Man transport authenticating with Kerberos, raw and under SPNEGO,
//! against a real MIT KDC and MIT's GSSAPI acceptor, neither of which shares code with ours.
//!
//! Each test makes a throwaway realm in a temporary directory (its own krb5.conf and kdc.conf,
//! a database from `kdb5_util`, a user and an `HTTP/localhost` service key from `kadmin.local`)
//! and runs `krb5kdc` on a free loopback port; nothing outside the directory is touched. The
//! acceptor is tests/peers/winrm_ntlm_endpoint.py: pyspnego over python-gssapi with the
//! service keytab, sealing recorded Windows replies with pypsrp's framing.
//!
//! Our client finds the KDC as sspi does: `$KRB5_CONFIG`'s `[realms] REALM kdc = host:port`
//! (after `SSPI_KDC_URL_<REALM>` and `SSPI_KDC_URL`, before DNS SRV records). The tests set
//! `KRB5_CONFIG` for the process, so they run one at a time.
//!
//! Needs the MIT KDC tools (Debian `krb5-kdc`, `krb5-admin-server`) and Python with pyspnego,
//! pypsrp and gssapi: `$CIMRUN_PYTHON`, else `.venv/bin/python`. These tests fail, not skip,
//! when any is missing.

use std::ffi::OsStr;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cimrun::protocol::wsman::transport::connect;
use cimrun::protocol::{AuthMechanism, Category, Endpoint};

mod winrm_peer;
use winrm_peer::{Peer, envelope, pages};

const REALM: &str = "CIMRUN.TEST";
/// A down-level logon name: sspi asks for the NT-PRINCIPAL `inventory` in realm CIMRUN.TEST.
const USER: &str = "CIMRUN.TEST\\inventory";
/// A user principal name: sspi sends it as an NT-ENTERPRISE name, which Active Directory
/// resolves to the account; MIT's database has no such lookup, so the realm holds a principal of
/// exactly that name.
const UPN: &str = "inventory@CIMRUN.TEST";
const PASSWORD: &str = "Kerb-Pa55w.rd-Ünïcode";
/// The acceptor's host name: the client asks the KDC for `HTTP/<this>`.
const HOST: &str = "localhost";

/// Serialises the tests: `KRB5_CONFIG` is process-wide.
static REALM_LOCK: Mutex<()> = Mutex::new(());

/// Where the MIT KDC tools are: Debian puts them in /usr/sbin, often not on a user's PATH.
fn kdc_tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/local/sbin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
        .unwrap_or_else(|| panic!("{name} not found: install the MIT KDC (Debian krb5-kdc and krb5-admin-server)"))
}

fn run(tool: &str, args: &[&str], dir: &Path) {
    let output = Command::new(kdc_tool(tool))
        .args(args)
        .env("KRB5_CONFIG", dir.join("krb5.conf"))
        .env("KRB5_KDC_PROFILE", dir.join("kdc.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(
        output.status.success(),
        "{tool} {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A throwaway realm with its KDC running; the KDC is killed when this is dropped.
struct Kdc {
    dir: tempfile::TempDir,
    child: Child,
    _lock: MutexGuard<'static, ()>,
}

impl Drop for Kdc {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Writes the realm's krb5.conf and kdc.conf, with its KDC on `port`.
fn write_config(dir: &Path, port: u16) {
    let d = dir.display();
    let krb5_conf = format!(
        "[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n  dns_lookup_realm = false\n  rdns = false\n\
         [realms]\n  {REALM} = {{\n    kdc = 127.0.0.1:{port}\n  }}\n"
    );
    // Pre-authentication required, as Active Directory does; AES keys only.
    let kdc_conf = format!(
        "[kdcdefaults]\n  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n\
         [realms]\n  {REALM} = {{\n    database_name = {d}/principal\n    key_stash_file = {d}/stash\n    acl_file = {d}/kadm5.acl\n\
         \x20   supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal\n\
         \x20   default_principal_flags = +preauth\n  }}\n\
         [logging]\n  kdc = FILE:{d}/kdc.log\n"
    );
    std::fs::write(dir.join("krb5.conf"), krb5_conf).unwrap();
    std::fs::write(dir.join("kdc.conf"), kdc_conf).unwrap();
}

impl Kdc {
    fn start() -> Kdc {
        // A test that failed while holding the lock leaves it poisoned; the realm is per test.
        let lock = REALM_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        write_config(path, 88);
        run("kdb5_util", &["create", "-s", "-r", REALM, "-P", "master-key"], path);
        let keytab = path.join("http.keytab");
        for query in [
            format!("addprinc -pw {PASSWORD} inventory"),
            format!("addprinc -pw {PASSWORD} {}", UPN.replace('@', "\\@")),
            format!("addprinc -randkey HTTP/{HOST}"),
            format!("ktadd -k {} HTTP/{HOST}", keytab.display()),
        ] {
            run("kadmin.local", &["-r", REALM, "-q", &query], path);
        }
        // The port is free when chosen but the KDC binds it (TCP and UDP) a moment later, so
        // another process may take it first: then the KDC exits and another port is tried.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            write_config(path, port);
            match launch(path, port) {
                Ok(child) => {
                    // SAFETY: every test touching the environment holds REALM_LOCK; sspi reads it
                    // through std.
                    unsafe { std::env::set_var("KRB5_CONFIG", path.join("krb5.conf")) };
                    return Kdc { dir, child, _lock: lock };
                }
                Err(failure) => failures.push(failure),
            }
        }
        panic!("krb5kdc did not start: {failures:?}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kdc.log")).unwrap_or_default()
    }

    fn peer(&self, protocol: &str, extra: &[&str]) -> Peer {
        Peer::start(self, protocol, extra)
    }
}

/// Runs the realm's KDC on `port` and waits until it accepts TCP connections.
fn launch(dir: &Path, port: u16) -> Result<Child, String> {
    // `timeout` bounds the KDC's life even if this process dies without dropping it.
    let mut child = Command::new("timeout")
        .arg("300")
        .arg(kdc_tool("krb5kdc"))
        .args(["-n", "-r", REALM])
        .env("KRB5_CONFIG", dir.join("krb5.conf"))
        .env("KRB5_KDC_PROFILE", dir.join("kdc.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start krb5kdc: {e}"));
    let log = || std::fs::read_to_string(dir.join("kdc.log")).unwrap_or_default();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited ({status}) on port {port}: {}", log()));
        }
        if started.elapsed() > Duration::from_secs(10) {
            stop(&mut child);
            return Err(format!("not listening on port {port} after 10 s: {}", log()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// Stops the KDC with SIGTERM, which `timeout` passes on to it (SIGKILL would orphan it).
fn stop(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: signals our own child, which is not reaped yet (wait() below), so the pid is its.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let _ = child.wait();
}

impl Peer {
    fn start(kdc: &Kdc, protocol: &str, extra: &[&str]) -> Peer {
        let realm = kdc.dir.path();
        // The NTLM half of the SPNEGO acceptor needs a user; Kerberos does not use it.
        let mut args = vec!["--user", "CIMRUN\\inventory", "--password", PASSWORD, "--protocol", protocol];
        args.extend_from_slice(extra);
        let (config, keytab) = (realm.join("krb5.conf"), realm.join("http.keytab"));
        let env = [
            ("KRB5_CONFIG", config.as_os_str()),
            ("KRB5_KTNAME", keytab.as_os_str()),
            // No replay cache in /var/tmp.
            ("KRB5RCACHETYPE", OsStr::new("none")),
        ];
        Peer::spawn(&args, &env, &pages())
    }

    fn endpoint(&self, mechanism: AuthMechanism, password: &str) -> Endpoint {
        self.endpoint_as(HOST, mechanism, USER, password)
    }
}

/// Four sealed requests and replies on one authenticated connection: the peer must unseal
/// each request byte for byte, and we must get each recorded Windows page back.
async fn sealed_pages_round_trip(mechanism: AuthMechanism, protocol: &str, user: &str) -> Peer {
    let kdc = Kdc::start();
    let peer = kdc.peer(protocol, &[]);
    let mut endpoint = peer.endpoint(mechanism, PASSWORD);
    if let Some(credential) = endpoint.credential.as_mut() {
        credential.username = user.into();
    }
    let mut transport = connect(&endpoint).await.unwrap_or_else(|e| panic!("{e}\nKDC log:\n{}", kdc.log()));
    peer.exchange_pages(transport.as_mut()).await;
    transport.shutdown().await;
    // The KDC issued a ticket for the service: the handshake went through it, not around it.
    assert!(
        kdc.log().contains(&format!("for HTTP/{HOST}@{REALM}")),
        "no service ticket in the KDC log:\n{}",
        kdc.log()
    );
    peer
}

// Multi-threaded: Kerberos legs run as blocking sections there (they call the KDC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_sealed_pages_round_trip() {
    let peer = sealed_pages_round_trip(AuthMechanism::Kerberos, "kerberos", USER).await;
    assert_eq!(peer.mechanisms(), "kerberos");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_with_a_user_principal_name() {
    let peer = sealed_pages_round_trip(AuthMechanism::Kerberos, "kerberos", UPN).await;
    assert_eq!(peer.mechanisms(), "kerberos");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_chooses_kerberos_and_seals_with_it() {
    let peer = sealed_pages_round_trip(AuthMechanism::Negotiate, "negotiate", USER).await;
    assert_eq!(peer.mechanisms(), "kerberos", "SPNEGO fell back to NTLM");
}

async fn wrong_password_is_auth_failed(mechanism: AuthMechanism, protocol: &str) {
    let kdc = Kdc::start();
    let peer = kdc.peer(protocol, &[]);
    let error = connect(&peer.endpoint(mechanism, "not the password")).await.err().unwrap();
    assert_eq!(error.category, Category::AuthFailed, "{error}");
    // Refused by the KDC at pre-authentication: nothing reached the service.
    assert!(kdc.log().contains("PREAUTH_FAILED"), "KDC log:\n{}", kdc.log());
    assert_eq!(peer.mechanisms(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_wrong_password_is_auth_failed() {
    wrong_password_is_auth_failed(AuthMechanism::Kerberos, "kerberos").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_wrong_password_is_auth_failed() {
    wrong_password_is_auth_failed(AuthMechanism::Negotiate, "negotiate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kerberos_tampered_reply_is_a_protocol_error() {
    let kdc = Kdc::start();
    let peer = kdc.peer("kerberos", &["--tamper-reply", "1"]);
    let mut transport = connect(&peer.endpoint(AuthMechanism::Kerberos, PASSWORD)).await.unwrap();
    transport.exchange(envelope(0)).await.unwrap();
    let error = transport.exchange(envelope(1)).await.unwrap_err();
    assert_eq!(error.category, Category::ProtocolError, "{error}");
}
