//! Printing: one JSON object per line for programs, readable lines for people, and what went
//! wrong.

use std::fmt;
use std::io::{IsTerminal, Write};

use serde::Serialize;

use super::args::Output;
use crate::client;

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    Client(client::Error),
    /// Writing the output failed (a closed pipe ends the command quietly).
    Output(std::io::Error),
    /// Arguments that do not go together (exit code 2, as for those clap refuses).
    Arguments(String),
    /// Anything else that went wrong, said in words.
    Other(String),
}

impl From<client::Error> for Failure {
    fn from(e: client::Error) -> Self {
        Failure::Client(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Output(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Client(e) => e.fmt(f),
            Failure::Output(e) => write!(f, "cannot write the output: {e}"),
            Failure::Arguments(why) | Failure::Other(why) => f.write_str(why),
        }
    }
}

/// Prints records to stdout, each as a JSON line or as text.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    json: bool,
}

impl Printer {
    pub fn new(output: Output) -> Self {
        let json = match output {
            Output::Json => true,
            Output::Text => false,
            Output::Auto => !std::io::stdout().is_terminal(),
        };
        Printer { json }
    }

    /// One record: `json` serialized on one line, or `text`.
    pub fn record(&self, json: &impl Serialize, text: impl fmt::Display) -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            let line = serde_json::to_string(json)
                .map_err(|e| Failure::Other(format!("cannot encode the output: {e}")))?;
            writeln!(stdout, "{line}")?;
        } else {
            writeln!(stdout, "{text}")?;
        }
        stdout.flush()?;
        Ok(())
    }

    /// Only in JSON output: a record the text output shows as a notice on stderr instead.
    pub fn json_only(&self, json: &impl Serialize) -> Result<(), Failure> {
        if self.json {
            self.record(json, "")?;
        }
        Ok(())
    }
}

/// A line for people on stderr: notices, reconnects, errors. Never fails the command.
pub fn notice(text: impl fmt::Display) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{text}");
}
