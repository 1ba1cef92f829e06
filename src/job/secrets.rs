//! Resolving a credential's password from its source. The password is held in a
//! [`SecretString`] from the moment it is read and never appears in errors or logs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use super::model::{CredentialSpec, PasswordSource};
use crate::protocol::Credential;

/// How long a password command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a password could not be resolved. No variant carries the password or the output it
/// came from.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set (or not valid UTF-8)")]
    EnvMissing(String),
    #[error("cannot read password file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("password command `{program}` could not start: {message}")]
    Spawn { program: String, message: String },
    #[error("password command `{program}` did not finish within {}s and was stopped", .timeout.as_secs())]
    Timeout { program: String, timeout: Duration },
    #[error("password command `{program}` failed ({status})")]
    CommandFailed { program: String, status: String },
    #[error("the command list is empty")]
    NoCommand,
    #[error("{0} gave an empty password")]
    Empty(String),
    #[error("a plain password in the job file needs `allow_inline_password: true`")]
    InlineNotAllowed,
}

/// Resolves a credential: the password from its env var, file, command, or (when allowed)
/// the job file itself. Relative file paths start from `base_dir`.
pub fn resolve(spec: &CredentialSpec, base_dir: &Path) -> Result<Credential, SecretError> {
    resolve_with_timeout(spec, base_dir, COMMAND_TIMEOUT)
}

/// [`resolve`] with a chosen command timeout.
pub fn resolve_with_timeout(
    spec: &CredentialSpec,
    base_dir: &Path,
    timeout: Duration,
) -> Result<Credential, SecretError> {
    let password = match &spec.password {
        PasswordSource::Env { env } => {
            let value = std::env::var(env).map_err(|_| SecretError::EnvMissing(env.clone()))?;
            non_empty(value, || format!("environment variable {env}"))?
        }
        PasswordSource::File { file } => {
            let path = base_dir.join(file);
            warn_if_readable_by_others(&path);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| SecretError::File { path: path.clone(), message: e.to_string() })?;
            non_empty(first_line(&text), || format!("password file {}", path.display()))?
        }
        PasswordSource::Command { command } => {
            let out = run_command(command, timeout)?;
            let program = command.first().cloned().unwrap_or_default();
            non_empty(first_line(&out), || format!("password command `{program}`"))?
        }
        PasswordSource::Inline(password) if spec.allow_inline_password => {
            non_empty(password.clone(), || "the inline password".to_string())?
        }
        PasswordSource::Inline(_) => return Err(SecretError::InlineNotAllowed),
    };
    Ok(Credential { username: spec.username.clone(), password })
}

fn non_empty(value: String, what: impl FnOnce() -> String) -> Result<SecretString, SecretError> {
    if value.is_empty() { Err(SecretError::Empty(what())) } else { Ok(SecretString::from(value)) }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim_end_matches('\r').to_string()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o044 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "password file is readable by group or others; chmod 600 it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// Runs `argv` without a shell and returns its standard output; stops it after `timeout`.
fn run_command(argv: &[String], timeout: Duration) -> Result<String, SecretError> {
    let (program, args) = argv.split_first().ok_or(SecretError::NoCommand)?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| SecretError::Spawn { program: program.clone(), message: e.to_string() })?;
    // Read stdout on a thread so a chatty command cannot fill the pipe and stall the wait.
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(out) = stdout.as_mut() {
            // Bounded: a password is one line; 1 MiB is far beyond any.
            let _ = out.take(1 << 20).read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SecretError::Timeout { program: program.clone(), timeout });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                return Err(SecretError::Spawn { program: program.clone(), message: e.to_string() });
            }
        }
    };
    let out = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(SecretError::CommandFailed { program: program.clone(), status: status.to_string() });
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn spec(password: PasswordSource, allow: bool) -> CredentialSpec {
        CredentialSpec { username: r"CORP\svc".into(), password, allow_inline_password: allow }
    }

    #[test]
    fn env_source() {
        // SAFETY: the variable name is unique to this test.
        unsafe { std::env::set_var("CIMRUN_TEST_SECRET_ENV", "s3cret") };
        let c = resolve(&spec(PasswordSource::Env { env: "CIMRUN_TEST_SECRET_ENV".into() }, false), Path::new("."))
            .unwrap();
        assert_eq!(c.password.expose_secret(), "s3cret");
        assert_eq!(c.username, r"CORP\svc");
        let e = resolve(&spec(PasswordSource::Env { env: "CIMRUN_TEST_UNSET_VAR".into() }, false), Path::new("."));
        assert!(matches!(e, Err(SecretError::EnvMissing(v)) if v == "CIMRUN_TEST_UNSET_VAR"));
    }

    #[test]
    fn file_source_reads_the_first_line_relative_to_base() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "hunter2\r\nsecond line\n").unwrap();
        let c = resolve(&spec(PasswordSource::File { file: "pw".into() }, false), dir.path()).unwrap();
        assert_eq!(c.password.expose_secret(), "hunter2");
        let e = resolve(&spec(PasswordSource::File { file: "missing".into() }, false), dir.path()).unwrap_err();
        assert!(e.to_string().starts_with("cannot read password file"), "{e}");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        assert!(matches!(
            resolve(&spec(PasswordSource::File { file: "empty".into() }, false), dir.path()),
            Err(SecretError::Empty(_))
        ));
    }

    /// Captures what `tracing` logs while `f` runs.
    fn logs(f: impl FnOnce()) -> String {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().map_err(|_| std::io::ErrorKind::Other)?.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buf.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[cfg(unix)]
    #[test]
    fn readable_password_files_are_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "hunter2\n").unwrap();
        let source = spec(PasswordSource::File { file: "pw".into() }, false);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let quiet = logs(|| assert!(resolve(&source, dir.path()).is_ok()));
        assert_eq!(quiet, "");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let warned = logs(|| assert!(resolve(&source, dir.path()).is_ok()));
        assert!(warned.contains("WARN") && warned.contains("readable by group or others"), "{warned}");
        assert!(warned.contains("mode=\"640\"") || warned.contains("mode=640"), "{warned}");
        assert!(!warned.contains("hunter2"));
    }

    #[test]
    fn command_source_runs_without_a_shell() {
        let argv = vec!["printf".to_string(), "%s\\n%s".into(), "pa ss; $(x)".into(), "two".into()];
        let c = resolve(&spec(PasswordSource::Command { command: argv }, false), Path::new(".")).unwrap();
        assert_eq!(c.password.expose_secret(), "pa ss; $(x)");
    }

    #[test]
    fn command_failures_and_timeouts() {
        let fail = vec!["false".to_string()];
        let e = resolve(&spec(PasswordSource::Command { command: fail }, false), Path::new(".")).unwrap_err();
        assert!(matches!(e, SecretError::CommandFailed { .. }), "{e}");
        let slow = vec!["sleep".to_string(), "5".into()];
        let started = Instant::now();
        let e = resolve_with_timeout(
            &spec(PasswordSource::Command { command: slow }, false),
            Path::new("."),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(e, SecretError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let none = vec!["/nonexistent/program".to_string()];
        assert!(matches!(
            resolve(&spec(PasswordSource::Command { command: none }, false), Path::new(".")),
            Err(SecretError::Spawn { .. })
        ));
    }

    #[test]
    fn inline_needs_the_opt_in_and_never_shows() {
        let e = resolve(&spec(PasswordSource::Inline("topsecret".into()), false), Path::new(".")).unwrap_err();
        assert!(matches!(e, SecretError::InlineNotAllowed));
        assert!(!e.to_string().contains("topsecret"));
        let c = resolve(&spec(PasswordSource::Inline("topsecret".into()), true), Path::new(".")).unwrap();
        assert_eq!(c.password.expose_secret(), "topsecret");
        assert!(!format!("{c:?}").contains("topsecret"));
    }

    #[test]
    fn command_output_does_not_leak_into_errors() {
        let argv = vec!["sh".to_string(), "-c".into(), "echo leaked-secret; exit 3".into()];
        let e = resolve(&spec(PasswordSource::Command { command: argv }, false), Path::new(".")).unwrap_err();
        assert!(!e.to_string().contains("leaked-secret"), "{e}");
        assert!(!format!("{e:?}").contains("leaked-secret"));
    }
}
