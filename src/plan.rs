//! Expanding a validated job into tasks: one [`HostTask`] per (session, computer), each with
//! the queries that apply to it, in job order.
//!
//! Planning touches no network and reads no secrets, so `cimrun plan` is safe to run anywhere;
//! credentials are resolved by the run, once per credential.

use std::sync::Arc;
use std::time::Duration;

use crate::job::{self, Authentication, LoadedJob, OptionSet, Protocol, QueryDef, ResourceUriScheme};
use crate::protocol::{
    AuthMechanism, DcomSettings, Endpoint, ProtocolKind, QuerySpec, WsManSettings, normalize_namespace,
};
use crate::wql;

/// The name outputs use for the local machine, as `New-CimSession` without `-ComputerName` does.
pub const LOCALHOST: &str = "localhost";

/// Default time to establish a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default server-side time for one operation (WinRM's own default is 60 s).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Default deadline for a whole host task.
pub const DEFAULT_TASK_TIMEOUT: Duration = Duration::from_secs(600);

/// All the work of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub hosts: Vec<HostTask>,
    /// Sessions × computers before `--limit` and `--shard` (for the summary).
    pub total_before_filters: usize,
}

impl Plan {
    /// Number of (computer, query) tasks.
    pub fn task_count(&self) -> usize {
        self.hosts.iter().map(|h| h.queries.len()).sum()
    }
}

/// One computer of one session: a connection, and the queries run on it in order.
#[derive(Debug, Clone)]
pub struct HostTask {
    pub session: Arc<str>,
    /// The computer's name as outputs show it (`localhost` for the local machine).
    pub computer: Arc<str>,
    pub endpoint: Endpoint,
    /// Name of the credential to resolve before connecting.
    pub credential: Option<String>,
    pub queries: Vec<Arc<QuerySpec>>,
}

/// Narrowing of the plan given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Glob patterns (`*`, `?`) on computer names, any of which must match.
    pub limit: Vec<String>,
    /// Keep only shard `index` of `count` (0-based).
    pub shard: Option<Shard>,
    /// Keep only these (session, computer, query) tasks: the failed ones of an earlier run.
    pub only: Option<std::collections::HashSet<(String, String, String)>>,
}

/// A stable partition of the computers: `--shard I/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
        let index: u32 = i.trim().parse().map_err(|_| format!("shard index {i:?} is not a number"))?;
        let count: u32 = n.trim().parse().map_err(|_| format!("shard count {n:?} is not a number"))?;
        if count == 0 {
            return Err("shard count must be at least 1".into());
        }
        if index >= count {
            return Err(format!("shard index {index} must be below the count {count} (shards are numbered from 0)"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether a computer belongs to this shard. The hash (FNV-1a 64 of the lowercased name) is
    /// our own so it never changes between versions or platforms: shards stay stable as long as
    /// a name is, whatever else is added to the fleet.
    pub fn contains(&self, computer: &str) -> bool {
        stable_hash(computer) % u64::from(self.count) == u64::from(self.index)
    }
}

/// FNV-1a 64 over the ASCII-lowercased name.
pub fn stable_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Glob match with `*` and `?`, case-insensitive (computer names are).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    // Iterative matcher with single backtrack point: linear in practice, no recursion.
    let (mut pi, mut ni, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ni;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Why a plan could not be made (beyond what validation catches).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("session {session}: {message}")]
    Computers { session: String, message: String },
    #[error("query {query}: {message}")]
    Query { query: String, message: String },
}

/// Expands a validated job into host tasks.
pub fn build(job: &LoadedJob, selection: &Selection) -> Result<Plan, PlanError> {
    let file = &job.file;
    let run = &file.run;
    let queries: Vec<(Arc<QuerySpec>, &QueryDef)> = file
        .queries
        .iter()
        .map(|q| query_spec(q).map(|s| (Arc::new(s), q)))
        .collect::<Result<_, _>>()?;

    let mut hosts = Vec::new();
    let mut total = 0usize;
    for session in &file.sessions {
        let options = session.options.as_ref().and_then(|n| file.options.get(n));
        let applicable: Vec<Arc<QuerySpec>> = queries
            .iter()
            .filter(|(_, def)| def.sessions.is_empty() || def.sessions.iter().any(|s| s == &session.name))
            .map(|(spec, _)| spec.clone())
            .collect();
        if applicable.is_empty() {
            continue;
        }
        let computers = job::hosts::computers(session, &job.base_dir).map_err(|e| PlanError::Computers {
            session: session.name.clone(),
            message: e.to_string(),
        })?;
        let local = computers.is_empty();
        let names: Vec<Option<String>> = if local { vec![None] } else { computers.into_iter().map(Some).collect() };
        let session_name: Arc<str> = Arc::from(session.name.as_str());
        for computer in names {
            total += 1;
            let display = computer.as_deref().unwrap_or(LOCALHOST);
            if !selection.limit.is_empty() && !selection.limit.iter().any(|p| glob_match(p, display)) {
                continue;
            }
            if let Some(shard) = selection.shard
                && !shard.contains(display)
            {
                continue;
            }
            let queries: Vec<Arc<QuerySpec>> = match &selection.only {
                None => applicable.clone(),
                Some(only) => applicable
                    .iter()
                    .filter(|q| only.contains(&(session.name.clone(), display.to_string(), q.name.clone())))
                    .cloned()
                    .collect(),
            };
            if queries.is_empty() {
                continue;
            }
            let endpoint = endpoint(computer.clone(), session, options, run, &job.base_dir);
            hosts.push(HostTask {
                session: session_name.clone(),
                computer: Arc::from(display),
                endpoint,
                credential: session.credential.clone(),
                queries,
            });
        }
    }
    Ok(Plan { hosts, total_before_filters: total })
}

/// Resolves one query definition (already validated) into what protocols need.
pub fn query_spec(q: &QueryDef) -> Result<QuerySpec, PlanError> {
    let err = |message: String| PlanError::Query { query: q.name.clone(), message };
    let (parsed, needs_filter) = match (&q.class, &q.query) {
        (_, Some(text)) => (wql::parse(text).map_err(|e| err(e.to_string()))?, true),
        (Some(class), None) => {
            let filter = match &q.filter {
                Some(f) => Some(wql::parse_condition(f).map_err(|e| err(e.to_string()))?),
                None => None,
            };
            let needs = filter.is_some() || !q.properties.is_empty();
            (wql::Query { properties: q.properties.clone(), class: class.clone(), filter }, needs)
        }
        (None, None) => return Err(err("needs `class` or `query`".into())),
    };
    Ok(QuerySpec {
        name: q.name.clone(),
        namespace: normalize_namespace(q.namespace.as_deref().unwrap_or("root/cimv2")),
        wql: parsed,
        needs_filter,
        resource_uri: q.resource_uri.clone(),
        key_only: q.key_only,
        arrays: q.arrays.clone(),
    })
}

fn endpoint(
    computer: Option<String>,
    session: &job::SessionSpec,
    options: Option<&OptionSet>,
    run: &job::RunSettings,
    base_dir: &std::path::Path,
) -> Endpoint {
    let default_opts = OptionSet::default();
    let o = options.unwrap_or(&default_opts);
    let protocol = match (&computer, o.protocol) {
        (None, _) => ProtocolKind::Local,
        (Some(_), Protocol::Wsman) => ProtocolKind::WsMan,
        (Some(_), Protocol::Dcom) => ProtocolKind::Dcom,
    };
    let dur = |s: Option<job::HumanDuration>, r: Option<job::HumanDuration>, d: Duration| {
        s.or(r).map(|h| h.0).unwrap_or(d)
    };
    let wsman_defaults = WsManSettings::default();
    let wsman = WsManSettings {
        use_ssl: o.use_ssl.unwrap_or(false),
        skip_ca_check: o.skip_ca_check.unwrap_or(false),
        skip_cn_check: o.skip_cn_check.unwrap_or(false),
        skip_revocation_check: o.skip_revocation_check.unwrap_or(false),
        allow_unencrypted: o.allow_unencrypted.unwrap_or(false),
        no_encryption: o.no_encryption.unwrap_or(false),
        http_prefix: o.http_prefix.clone().unwrap_or(wsman_defaults.http_prefix),
        max_envelope_size_kb: o.max_envelope_size_kb.unwrap_or(wsman_defaults.max_envelope_size_kb),
        proxy: o.proxy.clone(),
        culture: o.culture.clone(),
        ui_culture: o.ui_culture.clone(),
        dmtf_resource_uris: o.resource_uri_scheme == Some(ResourceUriScheme::Dmtf),
        spn_service: o.spn_service.clone(),
        encode_port_in_spn: o.encode_port_in_spn.unwrap_or(false),
        auth_with_first_request: o.auth_with_first_request.unwrap_or(true),
        certificate_thumbprint: o.certificate_thumbprint.clone(),
        // Files named in the job are relative to the job file, as `computers_from` is.
        ca_bundle: o.ca_bundle.as_ref().map(|p| base_dir.join(p)),
        client_certificate: o.client_certificate.as_ref().map(|p| base_dir.join(p)),
        client_key: o.client_key.as_ref().map(|p| base_dir.join(p)),
    };
    let dcom_defaults = DcomSettings::default();
    let dcom = DcomSettings {
        impersonation: o
            .impersonation
            .map(|i| format!("{i:?}").to_lowercase())
            .unwrap_or(dcom_defaults.impersonation),
        packet_privacy: o.packet_privacy.unwrap_or(dcom_defaults.packet_privacy),
        packet_integrity: o.packet_integrity.unwrap_or(dcom_defaults.packet_integrity),
    };
    Endpoint {
        computer,
        protocol,
        port: session.port,
        authentication: auth_mechanism(session.authentication.unwrap_or_default()),
        credential: None,
        connect_timeout: dur(session.connect_timeout, run.connect_timeout, DEFAULT_CONNECT_TIMEOUT),
        operation_timeout: dur(session.operation_timeout, run.operation_timeout, DEFAULT_OPERATION_TIMEOUT),
        wsman,
        dcom,
    }
}

/// Maps the job file's authentication name to the protocol layer's.
pub fn auth_mechanism(a: Authentication) -> AuthMechanism {
    match a {
        Authentication::Default => AuthMechanism::Default,
        Authentication::Basic => AuthMechanism::Basic,
        Authentication::Negotiate => AuthMechanism::Negotiate,
        Authentication::Ntlm => AuthMechanism::Ntlm,
        Authentication::Kerberos => AuthMechanism::Kerberos,
        Authentication::Digest => AuthMechanism::Digest,
        Authentication::Credssp => AuthMechanism::CredSsp,
    }
}

/// The port a session connects to: the job's, or the protocol's default.
pub fn effective_port(e: &Endpoint) -> Option<u16> {
    e.port.or(match e.protocol {
        ProtocolKind::WsMan => Some(e.wsman.default_port()),
        ProtocolKind::Dcom => Some(135),
        ProtocolKind::Local => None,
    })
}

/// A one-line description of where a host task connects, for `cimrun plan` and logs.
pub fn describe_endpoint(h: &HostTask) -> String {
    let e = &h.endpoint;
    match e.protocol {
        ProtocolKind::Local => "local".to_string(),
        ProtocolKind::WsMan => format!(
            "wsman {}://{}:{}{}",
            if e.wsman.use_ssl { "https" } else { "http" },
            h.computer,
            effective_port(e).unwrap_or(0),
            e.wsman.http_prefix
        ),
        ProtocolKind::Dcom => format!("dcom {}:{}", h.computer, effective_port(e).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_parse_and_partition() {
        assert!("4/4".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("x/2".parse::<Shard>().is_err());
        let shards: Vec<Shard> = (0..7).map(|i| format!("{i}/7").parse().unwrap()).collect();
        let names: Vec<String> = (0..5000).map(|i| format!("host{i:05}.corp.example")).collect();
        let mut sizes = [0usize; 7];
        for n in &names {
            let owners: Vec<usize> = (0..7).filter(|&i| shards[i].contains(n)).collect();
            assert_eq!(owners.len(), 1, "{n} must be in exactly one shard");
            sizes[owners[0]] += 1;
        }
        // Roughly even: each shard within 20% of the mean.
        for s in sizes {
            assert!((571..=857).contains(&s), "{sizes:?}");
        }
        // Case does not move a host.
        assert_eq!(shards[3].contains("HOST00001.corp.example"), shards[3].contains("host00001.corp.example"));
    }

    #[test]
    fn globbing() {
        assert!(glob_match("web*", "WEB01.corp"));
        assert!(glob_match("*.corp", "a.corp"));
        assert!(glob_match("w?b0*", "web01"));
        assert!(!glob_match("web?", "web01"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b*c", "aXbY"));
        assert!(glob_match("a*b*c", "aXbYc"));
    }

    #[test]
    fn certificate_files_are_relative_to_the_job_file() {
        let text = "version: 1\noptions:\n  tls:\n    use_ssl: true\n    ca_bundle: pki/ca.pem\n    \
                    client_certificate: pki/me.pem\n    client_key: /etc/cimrun/me.key\n\
                    sessions:\n  - name: s\n    computers: [srv01]\n    options: tls\n\
                    queries:\n  - name: os\n    class: Win32_OperatingSystem\n";
        let job = crate::job::load_str(text, "job.yaml", std::path::Path::new("/srv/jobs"), &[]).unwrap();
        let plan = build(&job, &Selection::default()).unwrap();
        let w = &plan.hosts[0].endpoint.wsman;
        assert_eq!(w.ca_bundle.as_deref(), Some(std::path::Path::new("/srv/jobs/pki/ca.pem")));
        assert_eq!(w.client_certificate.as_deref(), Some(std::path::Path::new("/srv/jobs/pki/me.pem")));
        assert_eq!(w.client_key.as_deref(), Some(std::path::Path::new("/etc/cimrun/me.key")));
    }

    #[test]
    fn the_last_handshake_leg_rides_on_the_first_request_unless_told() {
        let job = |options: &str| {
            let text = format!(
                "version: 1\noptions:\n  o:\n{options}sessions:\n  - name: s\n    computers: [srv01]\n    \
                 options: o\nqueries:\n  - name: os\n    class: Win32_OperatingSystem\n"
            );
            let job = crate::job::load_str(&text, "job.yaml", std::path::Path::new("/srv/jobs"), &[]).unwrap();
            build(&job, &Selection::default()).unwrap().hosts[0].endpoint.wsman.auth_with_first_request
        };
        assert!(job("    culture: en-US\n"));
        assert!(!job("    auth_with_first_request: false\n"));
        let dcom = "version: 1\noptions:\n  o:\n    protocol: dcom\n    auth_with_first_request: false\n\
                    sessions:\n  - name: s\n    computers: [srv01]\n    options: o\n\
                    queries:\n  - name: os\n    class: Win32_OperatingSystem\n";
        let errors = crate::job::load_str(dcom, "job.yaml", std::path::Path::new("/srv/jobs"), &[]).err();
        let text = format!("{errors:?}");
        assert!(text.contains("auth_with_first_request"), "a WS-Man option in a DCOM option set is an error: {text}");
    }

    #[test]
    fn namespaces_normalize() {
        assert_eq!(normalize_namespace("root\\cimv2"), "root/cimv2");
        assert_eq!(normalize_namespace("/root//StandardCimv2/"), "root/StandardCimv2");
        assert_eq!(normalize_namespace("\\"), "root/cimv2");
        assert_eq!(normalize_namespace(""), "root/cimv2");
    }
}
