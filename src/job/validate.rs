//! Checks that need the whole job: names, references, protocol parameter sets, templates,
//! WQL, limits. Every error is reported at the position of the value at fault.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use super::diag::Collector;
use super::fail_if;
use super::hosts;
use super::load::Dropped;
use super::model::{Authentication, HumanDuration, JobFile, OptionSet, PasswordSource, Protocol};
use super::yaml::{Node, Pos, Step};

/// Option keys of the WS-Man parameter set of `New-CimSessionOption`.
const WSMAN_ONLY: &[&str] = &[
    "use_ssl",
    "skip_ca_check",
    "skip_cn_check",
    "skip_revocation_check",
    "allow_unencrypted",
    "no_encryption",
    "http_prefix",
    "max_envelope_size_kb",
    "proxy",
    "resource_uri_scheme",
    "spn_service",
    "encode_port_in_spn",
    "auth_with_first_request",
    "certificate_thumbprint",
    "ca_bundle",
    "client_certificate",
    "client_key",
];

/// Option keys of the DCOM parameter set of `New-CimSessionOption`.
const DCOM_ONLY: &[&str] = &["impersonation", "packet_privacy", "packet_integrity"];

/// The variables a sink path template may use.
pub const SINK_VARIABLES: &[&str] = &["query", "class", "session", "computer", "date", "run_id"];

struct Checker<'a, 't> {
    root: &'a Node,
    dropped: &'a Dropped,
    diags: &'a mut Collector<'t>,
}

impl Checker<'_, '_> {
    fn pos(&self, path: &[Step<'_>]) -> Pos {
        self.root.at(path).pos
    }

    fn error(&mut self, path: &[Step<'_>], message: impl Into<String>) {
        let pos = self.pos(path);
        self.diags.at(pos, message);
    }

    /// The position of the key `key` in the mapping at `path`.
    fn key_pos(&self, path: &[Step<'_>], key: &str) -> Pos {
        let node = self.root.at(path);
        node.pair(key).map_or(node.pos, |(k, _)| k.pos)
    }

    /// Whether the node at `path` lost entries while recovering from earlier errors.
    fn touched(&self, path: &[Step<'_>]) -> bool {
        self.dropped.parents.contains(&self.root.at(path).id)
    }

    /// Whether the section lost entries while recovering from earlier errors.
    fn incomplete(&self, section: &str) -> bool {
        match self.root.get(section) {
            Some(node) => self.dropped.parents.contains(&node.id),
            None => self.dropped.keys.contains(&(self.root.id, section.to_string())),
        }
    }
}

/// Validates a job read from `root`, adding every error to `diags`.
pub(crate) fn validate(job: &JobFile, root: &Node, dropped: &Dropped, base_dir: &Path, diags: &mut Collector<'_>) {
    let mut c = Checker { root, dropped, diags };
    if job.version != 1 {
        c.error(&[Step::Key("version")], format!("unsupported version {}: this cimrun reads version 1", job.version));
    }
    options(job, &mut c);
    credentials(job, &mut c);
    sessions(job, base_dir, &mut c);
    queries(job, &mut c);
    sinks(job, &mut c);
    run(job, &mut c);
}

fn options(job: &JobFile, c: &mut Checker<'_, '_>) {
    for (name, set) in &job.options {
        let path = [Step::Key("options"), Step::Key(name)];
        let (foreign, own, other) = match set.protocol {
            Protocol::Wsman => (DCOM_ONLY, "wsman", "DCOM"),
            Protocol::Dcom => (WSMAN_ONLY, "dcom", "WS-Man"),
        };
        let node = c.root.at(&path);
        // A `protocol` dropped for an error leaves the default; judging keys by it would mislead.
        if c.dropped.keys.contains(&(node.id, "protocol".to_string())) {
            continue;
        }
        let keys: Vec<(Pos, String)> = match &node.kind {
            super::yaml::Kind::Map(pairs) => {
                pairs.iter().filter_map(|(k, _)| Some((k.pos, k.scalar()?.to_string()))).collect()
            }
            _ => Vec::new(),
        };
        for (pos, key) in keys.iter().filter(|(_, k)| foreign.contains(&k.as_str())) {
            c.diags.at(*pos, format!("`{key}` is a {other} option, but option set `{name}` uses protocol {own}"));
        }
        // In a DCOM set the keys were reported as foreign above.
        if set.protocol == Protocol::Wsman {
            client_certificate(set, name, c);
        }
        if let Some(size) = set.max_envelope_size_kb
            && !(8..=1_048_576).contains(&size)
        {
            c.error(
                &[Step::Key("options"), Step::Key(name), Step::Key("max_envelope_size_kb")],
                format!("max_envelope_size_kb must be between 8 and 1048576, found {size}"),
            );
        }
    }
}

/// A client certificate needs its key (and the key its certificate), and HTTPS.
fn client_certificate(set: &OptionSet, name: &str, c: &mut Checker<'_, '_>) {
    let at = |key| [Step::Key("options"), Step::Key(name), Step::Key(key)];
    match (&set.client_certificate, &set.client_key) {
        (Some(_), None) => c.error(&at("client_certificate"), "`client_certificate` needs `client_key`"),
        (None, Some(_)) => c.error(&at("client_key"), "`client_key` needs `client_certificate`"),
        (Some(_), Some(_)) if set.use_ssl != Some(true) => {
            let path = [Step::Key("options"), Step::Key(name)];
            let pos = c.key_pos(&path, "client_certificate");
            c.diags.at(pos, "client certificate authentication is HTTPS only: set `use_ssl: true`");
        }
        _ => {}
    }
}

fn credentials(job: &JobFile, c: &mut Checker<'_, '_>) {
    for (name, cred) in &job.credentials {
        let path = [Step::Key("credentials"), Step::Key(name), Step::Key("password")];
        if cred.username.trim().is_empty() {
            c.error(&[Step::Key("credentials"), Step::Key(name), Step::Key("username")], "empty username");
        }
        match &cred.password {
            PasswordSource::Inline(_) if !cred.allow_inline_password => c.error(
                &path,
                format!(
                    "credential `{name}` has a plain password in the job file; use {{ env: NAME }}, \
                     {{ file: PATH }} or {{ command: [...] }}, or set `allow_inline_password: true`"
                ),
            ),
            PasswordSource::Env { env } if env.trim().is_empty() => {
                c.error(&[path[0], path[1], path[2], Step::Key("env")], "empty environment variable name")
            }
            PasswordSource::Command { command } if command.first().is_none_or(|p| p.trim().is_empty()) => {
                c.error(&[path[0], path[1], path[2], Step::Key("command")], "the command needs a program to run")
            }
            _ => {}
        }
    }
}

fn sessions(job: &JobFile, base_dir: &Path, c: &mut Checker<'_, '_>) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, s) in job.sessions.iter().enumerate() {
        let at = |key| [Step::Key("sessions"), Step::Index(i), Step::Key(key)];
        name(c, &mut names, "session", &s.name, &at("name"));
        if let Some(set) = &s.options
            && !job.options.contains_key(set)
            && !c.incomplete("options")
        {
            c.error(&at("options"), undefined("option set", set, job.options.keys()));
        }
        if let Some(cred) = &s.credential
            && !job.credentials.contains_key(cred)
            && !c.incomplete("credentials")
        {
            c.error(&at("credential"), undefined("credential", cred, job.credentials.keys()));
        }
        let with_certificate = s
            .options
            .as_ref()
            .and_then(|set| job.options.get(set))
            .is_some_and(|set| set.client_certificate.is_some());
        if with_certificate && s.authentication.is_some_and(|a| a != Authentication::Default) {
            c.error(
                &at("authentication"),
                "the session's option set authenticates with a client certificate; leave `authentication` at `default`",
            );
        }
        if s.port == Some(0) {
            c.error(&at("port"), "port must be between 1 and 65535");
        }
        duration(c, s.operation_timeout, &at("operation_timeout"));
        duration(c, s.connect_timeout, &at("connect_timeout"));
        for (j, pattern) in s.computers.iter().enumerate() {
            if let Err(e) = hosts::check(pattern) {
                c.error(
                    &[Step::Key("sessions"), Step::Index(i), Step::Key("computers"), Step::Index(j)],
                    e.to_string(),
                );
            }
        }
        if let Some(file) = &s.computers_from
            && let Err(e) = hosts::read_list(&base_dir.join(file))
        {
            c.error(&at("computers_from"), e.to_string());
        }
    }
}

fn queries(job: &JobFile, c: &mut Checker<'_, '_>) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let sessions_incomplete = c.incomplete("sessions");
    for (i, q) in job.queries.iter().enumerate() {
        let item = [Step::Key("queries"), Step::Index(i)];
        let at = |key| [Step::Key("queries"), Step::Index(i), Step::Key(key)];
        name(c, &mut names, "query", &q.name, &at("name"));
        match (&q.class, &q.query) {
            (Some(_), Some(_)) => {
                let pos = c.key_pos(&item, "query");
                c.diags.at(pos, format!("query `{}` has both `class` and `query`: give one", q.name));
            }
            // A dropped `clas:` typo was already reported; "needs class" would repeat it.
            (None, None) if !c.touched(&item) => c.error(&item, format!("query `{}` needs `class` or `query`", q.name)),
            (Some(class), None) if !is_identifier(class) => {
                c.error(&at("class"), format!("invalid class name {class:?}"))
            }
            _ => {}
        }
        if q.query.is_some() {
            for key in ["properties", "filter"] {
                if c.root.at(&item).get(key).is_some() {
                    let pos = c.key_pos(&item, key);
                    c.diags.at(pos, format!("`{key}` goes with `class`; with `query`, write it in the WQL"));
                }
            }
        }
        for p in &q.properties {
            if !is_identifier(p) {
                let j = q.properties.iter().position(|x| x == p).unwrap_or(0);
                c.error(
                    &[item[0], item[1], Step::Key("properties"), Step::Index(j)],
                    format!("invalid property name {p:?}"),
                );
            }
        }
        if let Some(ns) = &q.namespace
            && !ns.split(['/', '\\']).all(is_identifier)
        {
            c.error(
                &at("namespace"),
                format!("invalid namespace {ns:?}: expected names joined by `/`, such as root/cimv2"),
            );
        }
        if let Some(text) = &q.query {
            wql(c, &at("query"), text, true);
        }
        if let Some(text) = &q.filter {
            wql(c, &at("filter"), text, false);
        }
        for (j, s) in q.sessions.iter().enumerate() {
            if !sessions_incomplete && !job.sessions.iter().any(|x| &x.name == s) {
                let known = job.sessions.iter().map(|x| &x.name);
                c.error(&[item[0], item[1], Step::Key("sessions"), Step::Index(j)], undefined("session", s, known));
            }
        }
    }
}

/// Checks WQL text and points at the offending token inside the YAML value.
fn wql(c: &mut Checker<'_, '_>, path: &[Step<'_>], text: &str, whole_query: bool) {
    let result = parse_wql(text, whole_query);
    if let Err(e) = result {
        let pos = inside_value(c.root.at(path).pos, text, e.offset, e.len);
        let what = if whole_query { "WQL query" } else { "WQL filter" };
        c.diags.at(pos, format!("invalid {what}: {}", e.message));
    }
}

/// Where byte `offset` of the scalar `text` (and `len` characters from it) is in the file,
/// given the value's position: exact for a single-line plain or quoted scalar, whose
/// characters map to columns one to one; the whole value otherwise.
fn inside_value(mut pos: Pos, text: &str, offset: usize, len: usize) -> Pos {
    let chars = text.chars().count();
    if !text.contains('\n') && pos.len >= chars {
        let quote = usize::from(pos.len > chars);
        pos.column += quote + text.get(..offset).map_or(0, |s| s.chars().count());
        pos.len = len.max(1);
    }
    pos
}

fn parse_wql(text: &str, whole_query: bool) -> Result<(), crate::wql::ParseError> {
    if whole_query { crate::wql::parse(text).map(|_| ()) } else { crate::wql::parse_condition(text).map(|_| ()) }
}

fn sinks(job: &JobFile, c: &mut Checker<'_, '_>) {
    let mut paths: HashMap<String, usize> = HashMap::new();
    for (i, sink) in job.sinks.iter().enumerate() {
        let at = |key| [Step::Key("sinks"), Step::Index(i), Step::Key(key)];
        let rendered = match render_sample(&sink.path) {
            Ok(rendered) => rendered,
            Err(message) => {
                c.error(&at("path"), message);
                continue;
            }
        };
        // A template that leaves the output directory would only be refused when the run
        // starts (exit 3, after the credentials are read); it is a mistake in the job.
        if let Err(e) = crate::sink::SinkSet::check_templates(std::slice::from_ref(sink)) {
            c.error(&at("path"), e.to_string());
            continue;
        }
        // Compared rendered, so `{{query}}` and `{{ query }}` are the same path.
        if let Some(first) = paths.insert(rendered, i) {
            let line = c.pos(&[Step::Key("sinks"), Step::Index(first), Step::Key("path")]).line;
            c.error(&at("path"), format!("two sinks write to {:?} (the other at line {line})", sink.path));
        }
        if sink.array_separator.is_some() && sink.kind != super::model::SinkKind::Csv {
            let pos = c.key_pos(&[Step::Key("sinks"), Step::Index(i)], "array_separator");
            c.diags.at(pos, "`array_separator` applies to csv sinks only");
        }
    }
}

/// Checks a sink path template: handlebars syntax, and only the known variables.
pub fn check_template(template: &str) -> Result<(), String> {
    render_sample(template).map(|_| ())
}

/// Renders a template with each variable set to its own name, as a stand-in for any run.
fn render_sample(template: &str) -> Result<String, String> {
    if template.trim().is_empty() {
        return Err("empty sink path".into());
    }
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_template_string("path", template).map_err(|e| format!("invalid path template: {}", e.reason()))?;
    let sample: BTreeMap<&str, &str> = SINK_VARIABLES.iter().map(|v| (*v, *v)).collect();
    let known = || SINK_VARIABLES.iter().map(|v| format!("{{{{{v}}}}}")).collect::<Vec<_>>().join(", ");
    match hb.render("path", &sample) {
        Ok(rendered) if rendered.trim().is_empty() => Err("the path template renders to an empty path".into()),
        Ok(rendered) => Ok(rendered),
        Err(e) => match e.reason() {
            handlebars::RenderErrorReason::MissingVariable(Some(name)) => {
                Err(format!("unknown variable `{name}` in the path template; the variables are {}", known()))
            }
            reason => Err(format!("invalid path template: {reason}; the variables are {}", known())),
        },
    }
}

fn run(job: &JobFile, c: &mut Checker<'_, '_>) {
    let at = |key| [Step::Key("run"), Step::Key(key)];
    if job.run.throttle == 0 {
        c.error(&at("throttle"), "throttle must be at least 1");
    }
    if job.run.per_host_operations == 0 {
        c.error(&at("per_host_operations"), "per_host_operations must be at least 1");
    }
    duration(c, job.run.connect_timeout, &at("connect_timeout"));
    duration(c, job.run.operation_timeout, &at("operation_timeout"));
    duration(c, job.run.task_timeout, &at("task_timeout"));
    if let Some(text) = &job.run.fail_if
        && let Err(e) = fail_if::parse(Some(text))
    {
        let pos = inside_value(c.root.at(&at("fail_if")).pos, text, e.offset, 1);
        c.diags.at(pos, e.to_string());
    }
}

fn duration(c: &mut Checker<'_, '_>, value: Option<HumanDuration>, path: &[Step<'_>]) {
    if value.is_some_and(|d| d.0 == Duration::ZERO) {
        c.error(path, "a timeout must be longer than zero");
    }
}

/// Records a name, reporting an empty one or a duplicate.
fn name<'j>(c: &mut Checker<'_, '_>, seen: &mut HashMap<&'j str, usize>, what: &str, name: &'j str, path: &[Step<'_>]) {
    if name.trim().is_empty() {
        c.error(path, format!("empty {what} name"));
        return;
    }
    let line = c.pos(path).line;
    if let Some(first) = seen.insert(name, line) {
        c.error(path, format!("duplicate {what} name `{name}` (first at line {first})"));
    }
}

fn undefined<'a>(what: &str, name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let known: Vec<&str> = known.map(String::as_str).collect();
    if known.is_empty() {
        format!("undefined {what} `{name}` (none are defined)")
    } else {
        format!("undefined {what} `{name}` (defined: {})", known.join(", "))
    }
}

/// A CIM class or property name: letters, digits and `_`, not starting with a digit.
fn is_identifier(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_accept_known_variables_only() {
        assert!(check_template("{{query}}-{{computer}}.csv").is_ok());
        assert!(check_template("out/{{date}}/{{run_id}}/{{session}}-{{class}}.json").is_ok());
        let e = check_template("{{host}}.csv").unwrap_err();
        assert!(e.starts_with("unknown variable `host`") && e.contains("{{computer}}"), "{e}");
        assert!(check_template("{{query}.csv").unwrap_err().starts_with("invalid path template"));
        assert!(check_template("{{#if query}}x{{/if}}.csv").is_ok());
        assert!(check_template("  ").is_err());
    }

    #[test]
    fn a_sink_path_leaving_the_output_directory_is_a_job_error() {
        for (path, why) in [("../{{query}}.csv", "goes up"), ("{{query}}/../../x.csv", "goes up"), ("/tmp/{{query}}.csv", "absolute")] {
            let yaml = format!(
                "version: 1\nsessions: [{{ name: s }}]\nqueries: [{{ name: q, class: Win32_BIOS }}]\nsinks: [{{ type: csv, path: {path:?} }}]\n"
            );
            let dir = std::env::temp_dir().join(format!("cimrun-validate-{}-{}", std::process::id(), path.len()));
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join("job.yaml");
            std::fs::write(&file, yaml).unwrap();
            let err = crate::job::load(&file, &[]).map(|_| ()).unwrap_err().to_string();
            let _ = std::fs::remove_dir_all(&dir);
            assert!(err.contains(why), "{path}: {err}");
        }
        assert_eq!(render_sample("{{ query }}/{{computer}}.csv").as_deref(), Ok("query/computer.csv"));
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("Win32_OperatingSystem"));
        assert!(is_identifier("__Namespace"));
        assert!(!is_identifier("1abc"));
        assert!(!is_identifier("Win32 OS"));
        assert!(!is_identifier(""));
    }
}
