//! The DCOM/WMI session: remote activation on the endpoint mapper port, the object exporter's
//! dynamic port, login to a namespace, ExecQuery and SmartEnum batches, over the sans-IO DCE/RPC
//! client in [`super::rpc`].
//!
//! Every network step has its own deadline: connecting (and binding) gets the endpoint's
//! connect timeout, so a firewalled dynamic port fails in seconds; a call gets the operation
//! timeout plus a margin, because the server itself waits up to the operation timeout for a
//! batch.

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use secrecy::ExposeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::activation::{self, ActivationReply, ActivationRequest, IID_IREMOTE_SCM_ACTIVATOR, RemoteCreateInstance};
use super::calls::{
    CLSID_WBEM_LEVEL1_LOGIN, EnumNext, EnumNextReply, ExecQuery, GetSmartEnum, IID_IENUM_WBEM_CLASS_OBJECT,
    IID_IWBEM_FETCH_SMART_ENUM, IID_IWBEM_LEVEL1_LOGIN, IID_IWBEM_SERVICES, IID_IWBEM_WCO_SMART_ENUM, InterfaceReply,
    NtlmLogin, SmartNext, SmartNextReply,
};
use super::ntlm::{Nonces, NtlmClient};
use super::objref::ObjRef;
use super::orpc::{ComVersion, InterfacePointer, OrpcThis, StatusReply};
use super::remunknown::{IID_IREM_UNKNOWN2, RemInterfaceRef, RemQueryInterface, RemQueryInterfaceReply, RemRelease};
use super::rpc::{self, AuthLevel, Connection, SyntaxId};
use super::wmio::packet::{ClassCache, decode_object_array};
use super::wmio::{DecodedObject, decode_encoding_unit};
use crate::protocol::{Category, Connector, Endpoint, Error, Page, QuerySpec, Session};

/// The endpoint mapper and activation port.
pub const ACTIVATION_PORT: u16 = 135;
/// Objects per `IWbemWCOSmartEnum::Next`, unless the connector sets another.
pub const DEFAULT_BATCH: u32 = 500;
/// Added to the operation timeout for a call's deadline: the server waits up to the operation
/// timeout itself before it answers a batch.
const CALL_MARGIN: Duration = Duration::from_secs(10);
const WBEM_S_FALSE: u32 = 1;
const WBEM_S_TIMEDOUT: u32 = 0x0004_0004;
/// E_NOINTERFACE: the enumerator has no IWbemFetchSmartEnum.
const E_NOINTERFACE: u32 = 0x8000_4002;
/// RPC_E_VERSION_MISMATCH: the server does not speak the COM version we asked for.
const RPC_E_VERSION_MISMATCH: u32 = 0x8001_0110;

/// Opens DCOM sessions (`protocol: dcom`).
#[derive(Debug, Clone)]
pub struct DcomConnector {
    /// Objects per SmartEnum batch.
    pub batch: u32,
}

impl Default for DcomConnector {
    fn default() -> Self {
        DcomConnector { batch: DEFAULT_BATCH }
    }
}

impl Connector for DcomConnector {
    fn open<'a>(&'a self, endpoint: &'a Endpoint) -> BoxFuture<'a, Result<Box<dyn Session>, Error>> {
        Box::pin(async move {
            let session = DcomSession::open(endpoint, self.batch).await?;
            Ok(Box::new(session) as Box<dyn Session>)
        })
    }
}

/// A WMI HRESULT as the shared taxonomy.
pub fn wbem_error(hresult: u32, what: &str) -> Error {
    let category = crate::protocol::wbem::category(hresult).unwrap_or(Category::ServerFault);
    Error::new(category, format!("{what} failed with HRESULT 0x{hresult:08x}")).with_code(format!("0x{hresult:08x}"))
}

fn protocol(message: impl Into<String>) -> Error {
    Error::new(Category::ProtocolError, message)
}

/// One authenticated DCE/RPC association over TCP.
struct Channel {
    stream: TcpStream,
    conn: Connection,
    call_deadline: Duration,
    /// Presentation contexts bound so far, by interface.
    contexts: HashMap<[u8; 16], u16>,
}

impl Channel {
    async fn connect(
        endpoint: &Endpoint,
        host: &str,
        port: u16,
        level: AuthLevel,
        iface: [u8; 16],
    ) -> Result<Channel, Error> {
        let limit = endpoint.connect_timeout;
        let credential = endpoint
            .credential
            .as_ref()
            .ok_or_else(|| Error::new(Category::AuthFailed, "DCOM needs a credential (NTLM)"))?;
        let stream = match tokio::time::timeout(limit, TcpStream::connect((host, port))).await {
            Err(_) => {
                return Err(Error::new(Category::TimedOut, format!("connecting to {host}:{port} took over {limit:?}")));
            }
            Ok(Err(e)) => {
                return Err(Error::new(Category::Unreachable, format!("cannot connect to {host}:{port}: {e}")));
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let ntlm = NtlmClient::new(
            &credential.username,
            credential.password.expose_secret(),
            &crate::protocol::ntlm::workstation(),
            level == AuthLevel::Privacy,
        );
        let call_deadline = endpoint.operation_timeout + CALL_MARGIN;
        let mut chan =
            Channel { stream, conn: Connection::new(level, Some(ntlm))?, call_deadline, contexts: HashMap::new() };
        let handshake = async {
            let bind = chan.conn.bind(SyntaxId { uuid: iface, major: 0, minor: 0 });
            chan.write(&bind).await?;
            let ack = chan.read_pdu().await?;
            let now = filetime_now();
            if let Some(auth3) = chan.conn.bind_ack(&ack, Nonces::random()?, now)? {
                chan.write(&auth3).await?;
            }
            Ok::<(), Error>(())
        };
        match tokio::time::timeout(limit, handshake).await {
            Err(_) => {
                return Err(Error::new(Category::TimedOut, format!("binding on {host}:{port} took over {limit:?}")));
            }
            Ok(r) => r?,
        }
        chan.contexts.insert(iface, 0);
        Ok(chan)
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.stream.write_all(data).await.map_err(|e| Error::new(Category::ConnectionFailed, format!("send: {e}")))
    }

    async fn read_pdu(&mut self) -> Result<Vec<u8>, Error> {
        let mut pdu = vec![0u8; rpc::HEADER_LEN];
        let broken = |e: std::io::Error| Error::new(Category::ConnectionFailed, format!("receive: {e}"));
        self.stream.read_exact(&mut pdu).await.map_err(broken)?;
        let len = rpc::frame_length(&pdu)?;
        pdu.resize(len, 0);
        if let Some(rest) = pdu.get_mut(rpc::HEADER_LEN..) {
            self.stream.read_exact(rest).await.map_err(broken)?;
        }
        Ok(pdu)
    }

    /// The context id for `iface`, adding it with alter_context the first time.
    async fn context(&mut self, iface: [u8; 16]) -> Result<u16, Error> {
        if let Some(&ctx) = self.contexts.get(&iface) {
            return Ok(ctx);
        }
        let pdu = self.conn.alter_context(SyntaxId { uuid: iface, major: 0, minor: 0 });
        let deadline = self.call_deadline;
        let ctx = tokio::time::timeout(deadline, async {
            self.write(&pdu).await?;
            let resp = self.read_pdu().await?;
            self.conn.alter_context_resp(&resp)
        })
        .await
        .map_err(|_| Error::new(Category::TimedOut, "alter_context timed out"))??;
        self.contexts.insert(iface, ctx);
        Ok(ctx)
    }

    /// Calls `opnum` of `iface` on the object `ipid` (None for a non-object interface).
    async fn call(
        &mut self,
        iface: [u8; 16],
        opnum: u16,
        ipid: Option<[u8; 16]>,
        stub: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let ctx = self.context(iface).await?;
        let (_, pdus) = self.conn.request(ctx, opnum, ipid, stub)?;
        let deadline = self.call_deadline;
        tokio::time::timeout(deadline, async {
            for pdu in &pdus {
                self.write(pdu).await?;
            }
            loop {
                let pdu = self.read_pdu().await?;
                if let Some(stub) = self.conn.response(&pdu)? {
                    return Ok(stub);
                }
            }
        })
        .await
        .map_err(|_| Error::new(Category::TimedOut, format!("no answer to operation {opnum} within {deadline:?}")))?
    }
}

/// Now in FILETIME units (100 ns since 1601), for the NTLMv2 blob when the server sends no time.
fn filetime_now() -> u64 {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (unix.as_secs() + 11_644_473_600) * 10_000_000 + u64::from(unix.subsec_nanos() / 100)
}

fn std_ipid(pointer: Option<&InterfacePointer>, what: &str) -> Result<[u8; 16], Error> {
    match pointer.map(InterfacePointer::objref).transpose()? {
        Some(ObjRef::Standard { std, .. }) => Ok(std.ipid),
        Some(ObjRef::Custom { .. }) => Err(protocol(format!("{what} came as a custom OBJREF"))),
        None => Err(protocol(format!("{what} came back NULL with success"))),
    }
}

/// An open DCOM session to one computer.
pub struct DcomSession {
    chan: Channel,
    login: [u8; 16],
    rem_unknown: [u8; 16],
    version: ComVersion,
    /// IWbemServices per namespace logged into.
    services: HashMap<String, [u8; 16]>,
    batch: u32,
    timeout_ms: i32,
    /// Objects of an abandoned enumeration, released on the next operation or on close.
    unreleased: Vec<[u8; 16]>,
}

impl DcomSession {
    /// Activates WMI's login object and connects to its object exporter.
    pub async fn open(endpoint: &Endpoint, batch: u32) -> Result<DcomSession, Error> {
        let host = endpoint
            .computer
            .clone()
            .ok_or_else(|| Error::new(Category::Unsupported, "DCOM needs a computer name (local WMI is not DCOM)"))?;
        let configured = if endpoint.dcom.packet_privacy { AuthLevel::Privacy } else { AuthLevel::Integrity };
        let port = endpoint.port.unwrap_or(ACTIVATION_PORT);
        let mut scm = Channel::connect(endpoint, &host, port, configured, IID_IREMOTE_SCM_ACTIVATOR).await?;
        let (reply, version) = activate(&mut scm).await?;
        drop(scm);

        // authnHint is the least the server accepts; never go below packet integrity.
        let level = match reply.authn_hint {
            6 => AuthLevel::Privacy,
            _ => configured,
        };
        let object_port = reply
            .bindings
            .string_bindings
            .iter()
            .filter(|b| b.tower_id == activation::TOWER_NCACN_IP_TCP)
            .find_map(|b| b.address.rsplit_once('[')?.1.strip_suffix(']')?.parse::<u16>().ok())
            .ok_or_else(|| protocol("the activation reply has no ncacn_ip_tcp binding with a port"))?;
        let login = reply
            .interfaces
            .iter()
            .find(|i| i.iid == IID_IWBEM_LEVEL1_LOGIN)
            .ok_or_else(|| protocol("the activation reply has no IWbemLevel1Login"))?;
        if login.hresult != 0 {
            return Err(wbem_error(login.hresult, "activating IWbemLevel1Login"));
        }
        let login = std_ipid(login.pointer.as_ref(), "IWbemLevel1Login")?;
        // The address we were given, at the port the exporter listens on: the names in the
        // bindings are the server's own and often do not resolve from here.
        let chan = Channel::connect(endpoint, &host, object_port, level, IID_IWBEM_LEVEL1_LOGIN).await?;
        let timeout_ms = i32::try_from(endpoint.operation_timeout.as_millis()).unwrap_or(i32::MAX);
        Ok(DcomSession {
            chan,
            login,
            rem_unknown: reply.ipid_rem_unknown,
            version,
            services: HashMap::new(),
            batch: batch.max(1),
            timeout_ms,
            unreleased: Vec::new(),
        })
    }

    fn orpc(&self) -> OrpcThis {
        let mut orpc = OrpcThis::new(causality());
        orpc.version = self.version;
        orpc
    }

    async fn services(&mut self, namespace: &str) -> Result<[u8; 16], Error> {
        if let Some(&ipid) = self.services.get(namespace) {
            return Ok(ipid);
        }
        let call = NtlmLogin {
            orpc: self.orpc(),
            network_resource: Some(format!("//./{}", namespace.replace('\\', "/"))),
            preferred_locale: None,
            flags: 0,
        };
        let stub = self.chan.call(IID_IWBEM_LEVEL1_LOGIN, NtlmLogin::OPNUM, Some(self.login), &call.encode()).await?;
        let reply = InterfaceReply::decode(&stub)?;
        if reply.hresult != 0 {
            return Err(wbem_error(reply.hresult, &format!("logging in to namespace {namespace}")));
        }
        let ipid = std_ipid(reply.interface.as_ref(), "IWbemServices")?;
        self.services.insert(namespace.to_string(), ipid);
        Ok(ipid)
    }

    /// ExecQuery, then the enumerator's SmartEnum, or the enumerator itself when the server
    /// has no SmartEnum for it.
    async fn start(&mut self, query: &QuerySpec) -> Result<Reader, Error> {
        self.release_pending().await;
        let services = self.services(&query.namespace).await?;
        let call = ExecQuery::wql(self.orpc(), &query.wql.to_string());
        let stub = self.chan.call(IID_IWBEM_SERVICES, ExecQuery::OPNUM, Some(services), &call.encode()).await?;
        let reply = InterfaceReply::decode(&stub)?;
        if reply.hresult != 0 {
            return Err(wbem_error(reply.hresult, "ExecQuery"));
        }
        let enumerator = std_ipid(reply.interface.as_ref(), "IEnumWbemClassObject")?;
        self.unreleased.push(enumerator);

        let qi =
            RemQueryInterface { orpc: self.orpc(), ipid: enumerator, refs: 5, iids: vec![IID_IWBEM_FETCH_SMART_ENUM] };
        let stub =
            self.chan.call(IID_IREM_UNKNOWN2, RemQueryInterface::OPNUM, Some(self.rem_unknown), &qi.encode()).await?;
        let reply = RemQueryInterfaceReply::decode(&stub)?;
        let fetch = match reply.results.first() {
            Some(r) if reply.hresult == 0 && r.hresult == 0 => r.std.ipid,
            Some(r) if r.hresult == E_NOINTERFACE => return Ok(Reader::Plain { enumerator }),
            Some(r) => return Err(wbem_error(r.hresult, "QueryInterface for IWbemFetchSmartEnum")),
            None => return Err(wbem_error(reply.hresult, "QueryInterface for IWbemFetchSmartEnum")),
        };
        self.unreleased.push(fetch);
        let call = GetSmartEnum { orpc: self.orpc() };
        let stub = self.chan.call(IID_IWBEM_FETCH_SMART_ENUM, GetSmartEnum::OPNUM, Some(fetch), &call.encode()).await?;
        let reply = InterfaceReply::decode(&stub)?;
        if reply.hresult != 0 {
            return Err(wbem_error(reply.hresult, "GetSmartEnum"));
        }
        let smart = std_ipid(reply.interface.as_ref(), "IWbemWCOSmartEnum")?;
        self.unreleased.push(smart);
        Ok(Reader::Smart { smart, proxy: causality(), cache: ClassCache::new() })
    }

    /// One batch: the instances and whether the enumeration is over.
    async fn next_batch(&mut self, reader: &mut Reader) -> Result<(Page, bool), Error> {
        let (objects, returned, hresult, what) = match reader {
            Reader::Smart { smart, proxy, cache } => {
                let call =
                    SmartNext { orpc: self.orpc(), proxy_guid: *proxy, timeout: self.timeout_ms, count: self.batch };
                let stub =
                    self.chan.call(IID_IWBEM_WCO_SMART_ENUM, SmartNext::OPNUM, Some(*smart), &call.encode()).await?;
                let reply = SmartNextReply::decode(&stub)?;
                let objects = if reply.returned == 0 { Vec::new() } else { decode_object_array(&reply.buffer, cache)? };
                (objects, reply.returned, reply.hresult, "IWbemWCOSmartEnum::Next")
            }
            Reader::Plain { enumerator } => {
                let call = EnumNext { orpc: self.orpc(), timeout: self.timeout_ms as u32, count: self.batch };
                let stub = self
                    .chan
                    .call(IID_IENUM_WBEM_CLASS_OBJECT, EnumNext::OPNUM, Some(*enumerator), &call.encode())
                    .await?;
                let reply = EnumNextReply::decode(&stub)?;
                let objects = reply.objects.iter().map(decode_class_object).collect::<Result<Vec<_>, _>>()?;
                (objects, reply.returned, reply.hresult, "IEnumWbemClassObject::Next")
            }
        };
        let done = match hresult {
            0 => false,
            WBEM_S_FALSE => true,
            // Nothing came within the operation timeout, as New-CimSession's OperationTimeoutSec.
            WBEM_S_TIMEDOUT if objects.is_empty() => {
                return Err(Error::new(Category::TimedOut, format!("{what}: no objects within the operation timeout"))
                    .with_code("0x00040004"));
            }
            WBEM_S_TIMEDOUT => false,
            other => return Err(wbem_error(other, what)),
        };
        if objects.len() != returned as usize {
            return Err(protocol(format!("{} objects in a batch announced as {returned}", objects.len())));
        }
        Ok((objects.into_iter().map(|o| o.into_instance()).collect(), done))
    }

    /// Releases the objects of finished or abandoned enumerations; failures only cost the
    /// server memory until it times the references out, so they are not errors.
    async fn release_pending(&mut self) {
        if self.unreleased.is_empty() {
            return;
        }
        let refs =
            self.unreleased.drain(..).map(|ipid| RemInterfaceRef { ipid, public_refs: 5, private_refs: 0 }).collect();
        let call = RemRelease { orpc: self.orpc(), refs };
        if let Ok(stub) =
            self.chan.call(IID_IREM_UNKNOWN2, RemRelease::OPNUM, Some(self.rem_unknown), &call.encode()).await
        {
            let _ = StatusReply::decode(&stub);
        }
    }
}

/// A fresh causality id per logical operation.
fn causality() -> [u8; 16] {
    uuid::Uuid::new_v4().into_bytes()
}

/// RemoteCreateInstance at COM 5.7, again at 5.6 if the server refuses the version.
async fn activate(scm: &mut Channel) -> Result<(ActivationReply, ComVersion), Error> {
    let mut last = None;
    for version in [ComVersion::V5_7, ComVersion { major: 5, minor: 6 }] {
        let mut request = ActivationRequest::new(CLSID_WBEM_LEVEL1_LOGIN, vec![IID_IWBEM_LEVEL1_LOGIN]);
        request.client_version = version;
        let mut orpc = OrpcThis::new(causality());
        orpc.version = version;
        let call = RemoteCreateInstance { orpc, properties: request.interface_pointer() };
        let stub = match scm.call(IID_IREMOTE_SCM_ACTIVATOR, RemoteCreateInstance::OPNUM, None, &call.encode()).await {
            Err(e) if e.code == Some(format!("0x{RPC_E_VERSION_MISMATCH:08x}")) => {
                last = Some(e);
                continue;
            }
            other => other?,
        };
        let reply = InterfaceReply::decode(&stub)?;
        if reply.hresult == RPC_E_VERSION_MISMATCH {
            last = Some(wbem_error(reply.hresult, "RemoteCreateInstance"));
            continue;
        }
        if reply.hresult != 0 {
            return Err(wbem_error(reply.hresult, "RemoteCreateInstance"));
        }
        return Ok((ActivationReply::decode_blob(&activation::reply_blob(&reply)?)?, version));
    }
    Err(last.unwrap_or_else(|| protocol("activation failed")))
}

/// How an enumeration's batches are read.
enum Reader {
    /// `IWbemWCOSmartEnum::Next`: WBEMDATA batches, each class sent once per proxy GUID.
    Smart { smart: [u8; 16], proxy: [u8; 16], cache: ClassCache },
    /// `IEnumWbemClassObject::Next`, for servers with no SmartEnum: each object carries its class.
    Plain { enumerator: [u8; 16] },
}

/// An `IWbemClassObject` as `IEnumWbemClassObject::Next` returns it: an MS-WMIO encoding unit
/// in an OBJREF_CUSTOM.
fn decode_class_object(pointer: &InterfacePointer) -> Result<DecodedObject, Error> {
    match pointer.objref()? {
        ObjRef::Custom { object_data, .. } => Ok(decode_encoding_unit(&object_data)?),
        ObjRef::Standard { .. } => Err(protocol("an IWbemClassObject came as a standard OBJREF")),
    }
}

/// Where an enumeration stands.
enum Phase {
    Start,
    Batches(Reader),
    Done,
}

impl Session for DcomSession {
    fn enumerate<'a>(&'a mut self, query: &'a QuerySpec) -> BoxStream<'a, Result<Page, Error>> {
        let stream = futures::stream::unfold((self, Phase::Start), move |(session, phase)| async move {
            let mut reader = match phase {
                Phase::Done => return None,
                Phase::Start => match session.start(query).await {
                    Ok(reader) => reader,
                    Err(e) => {
                        session.release_pending().await;
                        return Some((Err(e), (session, Phase::Done)));
                    }
                },
                Phase::Batches(reader) => reader,
            };
            // An empty batch is not a page; a server that keeps sending them is broken.
            let mut empty = 0;
            loop {
                match session.next_batch(&mut reader).await {
                    Ok((page, true)) => {
                        session.release_pending().await;
                        return if page.is_empty() { None } else { Some((Ok(page), (session, Phase::Done))) };
                    }
                    Ok((page, false)) if page.is_empty() && empty < 3 => empty += 1,
                    Ok((page, false)) if page.is_empty() => {
                        let e = protocol("the server keeps answering empty batches without ending");
                        return Some((Err(e), (session, Phase::Done)));
                    }
                    Ok((page, false)) => return Some((Ok(page), (session, Phase::Batches(reader)))),
                    Err(e) => return Some((Err(e), (session, Phase::Done))),
                }
            }
        });
        Box::pin(stream)
    }

    fn close(mut self: Box<Self>) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            self.release_pending().await;
            let services: Vec<[u8; 16]> = self.services.drain().map(|(_, ipid)| ipid).collect();
            self.unreleased.extend(services);
            self.unreleased.push(self.login);
            self.release_pending().await;
            Ok(())
        })
    }
}
