//! The compiled form of a stdio server: what the gateway runs.

use std::fmt;

use crate::model::StdioMode;

/// A stdio server's program, arguments and environment, with its secret
/// environment values resolved. `Debug` never prints those values.
#[derive(Clone, PartialEq, Eq)]
pub struct StdioSpec {
    /// The program (looked up in `PATH`).
    pub command: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables: literal `env` then resolved `secret_env`.
    pub env: Vec<(String, String)>,
    /// Names of the variables whose values are secrets.
    pub secret_names: Vec<String>,
    /// One process per session, or one for all.
    pub mode: StdioMode,
    /// Most processes (per-session mode: sessions) at once.
    pub max_processes: usize,
    /// Seconds a session may stay unused before it is ended.
    pub idle_timeout_secs: u64,
}

impl StdioSpec {
    /// A digest of everything that shapes the process (secret values
    /// included): a change means the running processes are stale.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(self.command.as_bytes());
        for a in &self.args {
            field(a.as_bytes());
        }
        for (k, v) in &self.env {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(
            format!(
                "{:?}/{}/{}",
                self.mode, self.max_processes, self.idle_timeout_secs
            )
            .as_bytes(),
        );
        h.finalize().into()
    }
}

impl fmt::Debug for StdioSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| {
                if self.secret_names.contains(k) {
                    format!("{k}=<secret>")
                } else {
                    format!("{k}={v}")
                }
            })
            .collect();
        f.debug_struct("StdioSpec")
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &env)
            .field("mode", &self.mode)
            .field("max_processes", &self.max_processes)
            .field("idle_timeout_secs", &self.idle_timeout_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secret_values() {
        let spec = StdioSpec {
            command: "srv".into(),
            args: vec![],
            env: vec![
                ("MODE".into(), "fast".into()),
                ("API_KEY".into(), "s3cr3t".into()),
            ],
            secret_names: vec!["API_KEY".into()],
            mode: StdioMode::PerSession,
            max_processes: 1,
            idle_timeout_secs: 1,
        };
        let text = format!("{spec:?}");
        assert!(
            text.contains("MODE=fast") && text.contains("API_KEY=<secret>"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
