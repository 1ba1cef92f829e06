//! Proves the test server speaks real WS-Man: pypsrp's `WSMan` client (an independent
//! implementation: its own envelopes, HTTP auth and ElementTree parsing) enumerates every class
//! of a simulated host, and everything it receives must match the host's dataset exactly.
//!
//! Needs Python with pypsrp: `CIMRUN_PYTHON`, or `.venv/bin/python` in the crate root. A missing
//! interpreter or package fails the test; it never skips.
#![cfg(feature = "testkit")]

mod support;
use support::python;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use cimrun::cim::Instance;
use cimrun::testkit::render::wire_texts;
use cimrun::testkit::{Fault, HostConfig, TestServer, dataset};
use serde_json::Value as Json;


/// Every dataset class; some also as WQL queries (`Class:properties[:condition]`), whose
/// property lists come back as `w:XmlFragment` items.
fn class_specs() -> Vec<String> {
    let mut specs: Vec<String> = dataset::CLASSES.iter().map(|c| c.to_string()).collect();
    specs.push("Win32_Service:Name,State,StartMode,ProcessId,InstallDate".into());
    specs.push("Win32_NetworkAdapterConfiguration:Index,IPAddress,IPSubnet,DefaultIPGateway,DNSServerSearchOrder,DHCPLeaseObtained".into());
    specs.push("Win32_Service:Name,ProcessId:State = 'Running' AND StartMode <> 'Manual'".into());
    specs.push("Win32_Process::Name LIKE 'svc%' OR ProcessId < 10".into());
    specs
}

/// Runs the peer script against host `i` and returns its JSON output.
fn run_peer(server: &TestServer, i: usize, extra: &[&str]) -> Json {
    let addr = server.addr(i).expect("host exists");
    let config = server.config(i).expect("host exists");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pypsrp_enum.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .args(["--host", &addr.ip().to_string(), "--port", &addr.port().to_string()])
        .args(["--user", &config.username, "--password", &config.password])
        .args(extra)
        .env("NO_PROXY", "*");
    for spec in class_specs() {
        cmd.args(["--class", &spec]);
    }
    for spec in get_specs(&config.dataset()) {
        cmd.args(["--get", &spec]);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e} (set CIMRUN_PYTHON)", python().display()));
    assert!(out.status.success(), "pypsrp peer failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("peer prints JSON")
}

/// WS-Transfer Gets of one service and one disk by their keys.
fn get_specs(host: &dataset::Host) -> Vec<String> {
    let key = |class: &str, n: usize, key: &str| {
        let value = host.class(class).and_then(|i| i.get(n)).and_then(|i| i.get(key)).map(|v| v.to_string());
        format!("{class}:{key}={}", value.expect("dataset instance"))
    };
    vec![key("Win32_Service", 17, "Name"), key("Win32_LogicalDisk", 0, "DeviceID")]
}

type Wire = BTreeMap<String, Vec<Option<String>>>;

/// An instance as property name -> texts on the wire.
fn wire(i: &Instance) -> Wire {
    i.properties
        .iter()
        .map(|p| (p.name.to_string(), wire_texts(&p.value)))
        // An empty array is not sent at all.
        .filter(|(_, texts)| !texts.is_empty())
        .collect()
}

/// The dataset side of one class spec.
fn expected(host: &dataset::Host, spec: &str) -> Vec<Wire> {
    let mut parts = spec.splitn(3, ':');
    let class = parts.next().unwrap_or(spec);
    let names: Vec<String> =
        parts.next().unwrap_or("").split(',').filter(|p| !p.is_empty()).map(String::from).collect();
    let condition = parts.next().map(|c| cimrun::wql::parse_condition(c).expect("test condition parses"));
    let instances = host.class(class).expect("dataset class");
    let selected: Vec<Wire> = instances
        .iter()
        .filter(|i| condition.as_ref().is_none_or(|c| c.matches(i)))
        .map(|i| if names.is_empty() { wire(i) } else { wire(&i.project(&names)) })
        .collect();
    assert!(!selected.is_empty(), "{spec} selects nothing; the comparison would be empty");
    selected
}

fn received(json: &Json, spec: &str) -> Vec<Wire> {
    serde_json::from_value(json["classes"][spec].clone()).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn assert_all_instances_arrive(server: &TestServer, i: usize, json: &Json) {
    let host = server.config(i).expect("host").dataset();
    let mut total = 0;
    for spec in class_specs() {
        let want = expected(&host, &spec);
        let got = received(json, &spec);
        assert_eq!(got.len(), want.len(), "{spec}: instance count");
        for (n, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{spec}: instance {n} differs");
        }
        total += got.len();
    }
    assert!(total > 250, "a realistic host has hundreds of instances, got {total}");
    for spec in get_specs(&host) {
        let (class, selector) = spec.split_once(':').unwrap_or_default();
        let (key, value) = selector.split_once('=').unwrap_or_default();
        let inst =
            host.class(class).and_then(|all| all.iter().find(|i| i.get(key).is_some_and(|v| v.to_string() == value)));
        let got: Wire = serde_json::from_value(json["get"][&spec].clone()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(got, wire(inst.expect("dataset instance")), "{spec}");
    }
    // Every page the client asked for was answered by an Enumerate or a Pull, and every
    // enumeration ran to its end, leaving no context open.
    let stats = server.stats(i).expect("host");
    assert_eq!(json["requests"].as_u64(), Some(stats.count("Enumerate") + stats.count("Pull")));
    assert_eq!(stats.count("Get"), 2);
    assert_eq!(stats.count("Enumerate"), class_specs().len() as u64);
    assert!(stats.count("Pull") > 10, "services and processes need several pages: {stats:?}");
    assert_eq!(stats.open_contexts, 0);
}

#[test]
fn pypsrp_basic_over_https_receives_every_instance() {
    let server = TestServer::builder()
        .host(HostConfig::new("web01.corp.example").seed(11).https(true).allow_unencrypted(false))
        .start()
        .expect("server starts");
    // Python's TLS stack (OpenSSL) verifies the certificate chain and name against the CA.
    let mut ca = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut ca, server.ca_pem().expect("CA").as_bytes()).expect("CA written");
    let ca_path = ca.path().to_string_lossy().into_owned();
    let json = run_peer(&server, 0, &["--ssl", "--ca", &ca_path, "--auth", "basic", "--max-elements", "25"]);
    assert_all_instances_arrive(&server, 0, &json);
    assert_eq!(server.stats(0).expect("host").sealed_requests, 0);
}

#[test]
fn pypsrp_client_certificate_over_https_receives_every_instance() {
    // Certificate authentication only: no Basic, no Negotiate.
    let host = HostConfig::new("web02.corp.example").seed(12).https(true).basic(false).negotiate(false);
    let server = TestServer::builder().host(host.certificate_auth(true)).start().expect("server starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = server.client_certificate("cimrun").expect("HTTPS host").expect("certificate issued");
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("written");
        p.to_string_lossy().into_owned()
    };
    let (ca, cert, key) = (path("ca.pem", server.ca_pem().expect("CA")), path("c.pem", &cert), path("k.pem", &key));
    let args = ["--ssl", "--ca", &ca, "--auth", "certificate", "--cert-pem", &cert, "--cert-key-pem", &key];
    let json = run_peer(&server, 0, &args);
    assert_all_instances_arrive(&server, 0, &json);
    let stats = server.stats(0).expect("host");
    let operations: u64 = stats.requests.values().sum();
    assert_eq!(stats.certificate_logons, operations, "every request rode on the certificate: {stats:?}");
}

#[test]
fn pypsrp_basic_over_http_receives_every_instance_in_small_pages() {
    let server = TestServer::builder()
        .host(HostConfig::new("db02").seed(3).allow_unencrypted(true))
        .start()
        .expect("server starts");
    let json = run_peer(&server, 0, &["--auth", "basic", "--encryption", "never", "--max-elements", "7"]);
    assert_all_instances_arrive(&server, 0, &json);
}

/// pypsrp with `auth` over HTTP to a stock Windows listener (AllowUnencrypted=false, so every
/// body must be sealed); returns the host's counters.
fn sealed_over_http(auth: &str) -> cimrun::testkit::HostStats {
    let server = TestServer::builder()
        .host(HostConfig::new("app03.corp.example").seed(21).allow_unencrypted(false).basic(false))
        .start()
        .expect("server starts");
    let json = run_peer(&server, 0, &["--auth", auth, "--encryption", "always", "--max-elements", "30"]);
    assert_all_instances_arrive(&server, 0, &json);
    // One connection authenticated once: the handshake's 401 challenge is not a failure.
    let stats = server.stats(0).expect("host");
    assert_eq!(stats.unauthorized, 1, "only the first, credential-less request is refused: {stats:?}");
    let operations: u64 = stats.requests.values().sum();
    assert_eq!(stats.sealed_requests, operations, "every request was sealed");
    assert_eq!(stats.connections, 1, "NTLM authenticates one connection");
    stats
}

#[test]
fn pypsrp_ntlm_with_message_encryption_over_http_receives_every_instance() {
    assert_eq!(sealed_over_http("ntlm").spnego_logons, 0);
}

#[test]
fn pypsrp_negotiate_with_message_encryption_over_http_receives_every_instance() {
    // pyspnego wraps NTLM in SPNEGO (NegTokenInit, then NegTokenResp with a mechListMIC).
    assert_eq!(sealed_over_http("negotiate").spnego_logons, 1);
}

#[test]
fn pypsrp_ntlm_with_a_wrong_password_is_refused() {
    let server = TestServer::builder()
        .host(HostConfig::new("app04").allow_unencrypted(false).credentials("cimrun", "right-password"))
        .start()
        .expect("server starts");
    let addr = server.addr(0).expect("host");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pypsrp_enum.py");
    let out = Command::new(python())
        .arg(&script)
        .args(["--host", &addr.ip().to_string(), "--port", &addr.port().to_string()])
        .args(["--user", "cimrun", "--password", "wrong-password", "--auth", "ntlm", "--class", "Win32_BIOS"])
        .output()
        .expect("python runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert_eq!(server.stats(0).expect("host").count("Enumerate"), 0);
}

#[test]
fn pypsrp_rejects_the_wrong_name_and_untrusted_certificates() {
    let server = TestServer::builder()
        .host(HostConfig::new("tls1").https(true).fault(Fault::WrongCertificateName))
        .host(HostConfig::new("tls2").https(true).fault(Fault::UntrustedCertificate))
        .start()
        .expect("server starts");
    let mut ca = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut ca, server.ca_pem().expect("CA").as_bytes()).expect("CA written");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/pypsrp_enum.py");
    for i in 0..2 {
        let addr = server.addr(i).expect("host");
        let out = Command::new(python())
            .arg(&script)
            .args(["--host", &addr.ip().to_string(), "--port", &addr.port().to_string(), "--ssl", "--auth", "basic"])
            .arg("--ca")
            .arg(ca.path())
            .args(["--user", "cimrun", "--password", "P@ssw0rd!", "--class", "Win32_BIOS"])
            .output()
            .expect("python runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("CERTIFICATE_VERIFY_FAILED"), "host {i}: {stderr}");
        assert_eq!(server.stats(i).expect("host").count("Enumerate"), 0);
    }
}
