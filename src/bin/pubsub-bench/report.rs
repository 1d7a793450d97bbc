//! A run's figures: printed as a readable block and as one JSON line.

use serde_json::{Map, Value, json};

use crate::cli::Scenario;
use crate::target::Target;

/// Whether a bigger figure is better, for ratios and the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// The figure a scenario is judged by; `--compare` prints its ratio.
#[derive(Debug, Clone, Copy)]
pub struct Headline {
    pub key: &'static str,
    pub better: Better,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub scenario: &'static str,
    pub server: String,
    pub addr: String,
    pub run: u32,
    /// 1 when this server ran first in its pair of runs, 2 when second (`--compare`).
    pub position: u32,
    /// In the order they are printed.
    pub figures: Vec<(&'static str, Value)>,
    /// Things a reader must know to trust the figures (harness saturated, deliveries missing...).
    pub notes: Vec<String>,
    pub headline: Headline,
    /// False when the run broke (connections refused, errors, missing deliveries).
    pub ok: bool,
    /// Set when the run could not be carried out at all (then there are no figures).
    pub error: Option<String>,
}

impl RunReport {
    /// A report with no figures yet, not ok until the scenario says so.
    pub fn new(scenario: &Scenario, target: &Target, run: u32, headline: Headline) -> Self {
        RunReport {
            scenario: scenario.name(),
            server: target.name.clone(),
            addr: target.label(),
            run,
            position: 1,
            figures: Vec::new(),
            notes: Vec::new(),
            headline,
            ok: false,
            error: None,
        }
    }

    pub fn number(&self, key: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_f64())
    }

    pub fn json(&self) -> String {
        let mut map = Map::new();
        map.insert("scenario".into(), json!(self.scenario));
        map.insert("server".into(), json!(self.server));
        map.insert("addr".into(), json!(self.addr));
        map.insert("run".into(), json!(self.run));
        map.insert("position".into(), json!(self.position));
        map.insert("ok".into(), json!(self.ok));
        map.insert("headline".into(), json!(self.headline.key));
        if let Some(e) = &self.error {
            map.insert("error".into(), json!(e));
        }
        for (k, v) in &self.figures {
            map.insert((*k).into(), v.clone());
        }
        map.insert("notes".into(), json!(self.notes));
        Value::Object(map).to_string()
    }

    /// A few aligned lines: `name value` pairs, four to a line, then the notes.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} run {} on {} ({}){}\n",
            self.scenario,
            self.run,
            self.server,
            self.addr,
            if self.ok { "" } else { "  ** FAILED **" }
        );
        for row in self.figures.chunks(4) {
            out.push(' ');
            for (k, v) in row {
                out.push_str(&format!(" {:>22} {:<12}", k, show(v)));
            }
            out.push('\n');
        }
        for note in &self.notes {
            out.push_str(&format!("  note: {note}\n"));
        }
        out
    }
}

/// Numbers with at most three decimals, without trailing noise.
pub fn show(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.abs() >= 1000.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.3}")
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A number that JSON can hold (NaN and infinities become null).
pub fn num(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
}

pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
