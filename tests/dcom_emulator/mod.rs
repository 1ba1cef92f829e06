//! Starts tests/peers/dcom_emulator.py (a DCOM/WMI server on impacket's structures) and drives
//! DCE/RPC connections to it with cimrun's sans-IO client over blocking loopback sockets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cimrun::protocol::Error;
use cimrun::protocol::dcom::ntlm::{Nonces, NtlmClient};
use cimrun::protocol::dcom::rpc::{self, AuthLevel, Connection, SyntaxId};

use super::dcom_peer;

pub const USER: &str = "LAB\\alice";
pub const PASSWORD: &str = "Secret-123";

/// A running emulator; killed when dropped (it also exits by itself after its lifetime).
pub struct Emulator {
    child: Child,
    pub activation_port: u16,
    pub object_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Emulator {
    pub fn start(args: &[&str]) -> Emulator {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log.json");
        let mut child = Command::new(dcom_peer::python())
            .arg(root.join("tests/peers/dcom_emulator.py"))
            .arg("--testdata")
            .arg(root.join("../shared/testdata/wmio"))
            .arg("--log")
            .arg(&log)
            .args(["--lifetime", "60"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot start the emulator (set CIMRUN_PYTHON to a python with impacket)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let ports: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("emulator said {line:?}: {e}"));
        let port = |k: &str| ports[k].as_u64().unwrap() as u16;
        Emulator { activation_port: port("activation_port"), object_port: port("object_port"), child, log, _dir: dir }
    }

    /// What the emulator recorded: one entry per connection, in accept order.
    pub fn connections(&self) -> Vec<serde_json::Value> {
        // The emulator writes the log before each answer, so it is current once we have one.
        let log: serde_json::Value = serde_json::from_slice(&std::fs::read(&self.log).unwrap()).unwrap();
        log["connections"].as_array().unwrap().clone()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("emulator log: {}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One authenticated association over TCP.
pub struct Wire {
    stream: TcpStream,
    pub conn: Connection,
    /// Request fragments sent so far.
    pub fragments_sent: usize,
}

pub fn interface(uuid: [u8; 16]) -> SyntaxId {
    SyntaxId { uuid, major: 0, minor: 0 }
}

impl Wire {
    pub fn open(port: u16, level: AuthLevel, password: &str, iface: [u8; 16], max_frag: u16) -> Result<Wire, Error> {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let ntlm = NtlmClient::new(USER, password, "TESTBOX", level == AuthLevel::Privacy);
        let conn = Connection::new(level, Some(ntlm))?.with_max_frag(max_frag);
        let mut wire = Wire { stream, conn, fragments_sent: 0 };
        let bind = wire.conn.bind(interface(iface));
        wire.stream.write_all(&bind).unwrap();
        let ack = wire.read_pdu();
        if let Some(auth3) = wire.conn.bind_ack(&ack, Nonces::random()?, 0)? {
            wire.stream.write_all(&auth3).unwrap();
        }
        Ok(wire)
    }

    pub fn read_pdu(&mut self) -> Vec<u8> {
        let mut pdu = vec![0u8; rpc::HEADER_LEN];
        self.stream.read_exact(&mut pdu).unwrap();
        let len = rpc::frame_length(&pdu).unwrap();
        pdu.resize(len, 0);
        self.stream.read_exact(&mut pdu[rpc::HEADER_LEN..]).unwrap();
        pdu
    }

    pub fn alter(&mut self, iface: [u8; 16]) -> Result<u16, Error> {
        let pdu = self.conn.alter_context(interface(iface));
        self.stream.write_all(&pdu).unwrap();
        let resp = self.read_pdu();
        self.conn.alter_context_resp(&resp)
    }

    pub fn call(&mut self, context: u16, opnum: u16, object: Option<[u8; 16]>, stub: &[u8]) -> Result<Vec<u8>, Error> {
        let (_, pdus) = self.conn.request(context, opnum, object, stub)?;
        for pdu in &pdus {
            self.stream.write_all(pdu).unwrap();
        }
        self.fragments_sent += pdus.len();
        loop {
            let pdu = self.read_pdu();
            if let Some(stub) = self.conn.response(&pdu)? {
                return Ok(stub);
            }
        }
    }
}
