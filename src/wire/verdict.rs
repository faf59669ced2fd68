//! The verdict an operator (on the node's page) or the city platform (over MQTT, on
//! `{prefix}/{node}/{camera}/verdict/{incident_id}`) gives on an incident:
//! `{"verdict": "false_positive" | "confirmed", "by": "…", "note": "…"}`
//! (`schemas/verdict.v1.json`). The node reads it; it never publishes one.

use serde::{Deserialize, Serialize};

/// What the operator says the incident was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It happened: nothing changes on the node, the verdict is journaled and counted.
    Confirmed,
    /// It did not: the incident ends and the same thing at the same place is suppressed.
    FalsePositive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::FalsePositive => "false_positive",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictPayload {
    pub verdict: Verdict,
    /// Who gave it: a person or a system, as the platform names them.
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The longest `by` and `note` kept: a verdict is a short statement, not a document.
pub const MAX_BY_CHARS: usize = 128;
pub const MAX_NOTE_CHARS: usize = 1024;

impl VerdictPayload {
    /// Reads a verdict message; the error says what is wrong with it, for the log.
    pub fn parse(bytes: &[u8]) -> Result<VerdictPayload, String> {
        let payload: VerdictPayload =
            serde_json::from_slice(bytes).map_err(|e| format!("not a verdict: {e}"))?;
        payload.check()?;
        Ok(payload)
    }

    /// Whether `by` and `note` are as a verdict needs them.
    pub fn check(&self) -> Result<(), String> {
        let payload = self;
        if payload.by.trim().is_empty() {
            return Err("`by` is empty: a verdict says who gave it".into());
        }
        if payload.by.chars().count() > MAX_BY_CHARS {
            return Err(format!("`by` is longer than {MAX_BY_CHARS} characters"));
        }
        if payload.note.as_ref().is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS) {
            return Err(format!("`note` is longer than {MAX_NOTE_CHARS} characters"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_parse_and_malformed_ones_say_why() {
        let ok =
            VerdictPayload::parse(br#"{"verdict":"false_positive","by":"ops-7","note":"shadow"}"#);
        let ok = ok.unwrap();
        assert_eq!(
            (ok.verdict, ok.by.as_str(), ok.note.as_deref()),
            (Verdict::FalsePositive, "ops-7", Some("shadow"))
        );
        assert_eq!(
            VerdictPayload::parse(br#"{"verdict":"confirmed","by":"a"}"#).unwrap().note,
            None
        );
        for (bad, why) in [
            (&b"not json"[..], "not a verdict"),
            (br#"{"verdict":"maybe","by":"a"}"#, "unknown variant"),
            (br#"{"verdict":"confirmed"}"#, "missing field `by`"),
            (br#"{"verdict":"confirmed","by":"  "}"#, "`by` is empty"),
            (br#"{"verdict":"confirmed","by":"a","extra":1}"#, "unknown field"),
        ] {
            let e = VerdictPayload::parse(bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
