//! `--token-command CMD`: a shell command that prints a fresh token, run whenever one is needed
//! (before each connection and ahead of the token's expiry), so `pubsub sub` outlives its
//! tokens.

use std::process::{Command, Stdio};

use crate::client::TokenProvider;

/// Runs `command` with `sh -c` and returns what it printed, trimmed; an error says why not
/// (it could not start, failed, or printed nothing).
pub async fn fetch(command: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let output = Command::new("sh")
            .args(["-c", &command])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("--token-command cannot start: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "--token-command failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if token.is_empty() {
            return Err("--token-command printed no token".to_owned());
        }
        Ok(token)
    })
    .await
    .map_err(|e| format!("--token-command: {e}"))?
}

/// A provider running `command` each time it is asked.
pub fn provider(command: String) -> TokenProvider {
    TokenProvider::new(move || fetch(command.clone()))
}
