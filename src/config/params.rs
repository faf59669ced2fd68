//! Algorithm parameters: one set of names shared by the catalog (defaults per algorithm) and the
//! camera config (overrides), and what each primitive takes. The rules stage builds each
//! primitive from them (`rules::primitives::build`).

use serde::{Deserialize, Serialize};

/// The building blocks algorithms are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrimitiveKind {
    Presence,
    Dwell,
    Loiter,
    Count,
    LineCross,
    Direction,
    Absence,
    Pair,
    AreaRatio,
    Cascade,
    PlateWatch,
}

impl PrimitiveKind {
    pub fn name(&self) -> &'static str {
        match self {
            PrimitiveKind::Presence => "presence",
            PrimitiveKind::Dwell => "dwell",
            PrimitiveKind::Loiter => "loiter",
            PrimitiveKind::Count => "count",
            PrimitiveKind::LineCross => "line_cross",
            PrimitiveKind::Direction => "direction",
            PrimitiveKind::Absence => "absence",
            PrimitiveKind::Pair => "pair",
            PrimitiveKind::AreaRatio => "area_ratio",
            PrimitiveKind::Cascade => "cascade",
            PrimitiveKind::PlateWatch => "plate_watch",
        }
    }

    /// The primitive-specific parameters it takes; any other is a config mistake.
    pub fn parameters(&self) -> &'static [&'static str] {
        match self {
            PrimitiveKind::Presence => &["persist_s", "clear_s"],
            PrimitiveKind::Dwell => &["dwell_s", "max_motion"],
            PrimitiveKind::Loiter => &["dwell_s"],
            PrimitiveKind::Count => &["min_count", "persist_s", "clear_s"],
            PrimitiveKind::LineCross => &["line", "direction", "min_travel", "anchor"],
            PrimitiveKind::Direction => &["heading_deg", "tolerance_deg", "min_travel"],
            PrimitiveKind::Absence => &["partner_classes", "persist_s"],
            PrimitiveKind::Pair => &["partner_classes", "max_gap", "persist_s", "clear_s"],
            PrimitiveKind::AreaRatio => &["min_ratio", "persist_s", "clear_s"],
            PrimitiveKind::Cascade => &["classifier", "labels", "min_score", "min_frames"],
            PrimitiveKind::PlateWatch => &["watch"],
        }
    }

    /// Parameters without a default: the catalog or the camera must set them.
    pub fn required(&self) -> &'static [&'static str] {
        match self {
            PrimitiveKind::LineCross => &["line"],
            PrimitiveKind::Direction => &["heading_deg"],
            PrimitiveKind::Absence | PrimitiveKind::Pair => &["partner_classes"],
            PrimitiveKind::Count => &["min_count"],
            PrimitiveKind::AreaRatio => &["min_ratio"],
            PrimitiveKind::Cascade => &["classifier", "labels"],
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn name(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Which side of a line counts as crossing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrossDirection {
    AToB,
    BToA,
    Any,
}

/// Which point of a box stands for the object when it crosses a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    BottomCentre,
    Centre,
}

/// A value as written in a config: `f32` parameters without their binary noise (0.15, not
/// 0.15000000596046448).
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{}", (f * 1e6).round() / 1e6),
            _ => n.to_string(),
        },
        serde_json::Value::Array(items) => {
            format!("[{}]", items.iter().map(plain).collect::<Vec<_>>().join(", "))
        }
        other => other.to_string(),
    }
}

/// The longest duration a setting takes: 30 days. Longer is a typo (`1e308` was accepted), and
/// would overflow the timers it feeds.
pub const MAX_SECONDS: f64 = 30.0 * 24.0 * 3600.0;

/// What is wrong with a duration in seconds, if anything.
pub fn seconds_problem(value: f64) -> Option<String> {
    (!(value.is_finite() && (0.0..=MAX_SECONDS).contains(&value)))
        .then(|| format!("must be zero or more seconds, and at most {MAX_SECONDS} (30 days)"))
}

/// Every primitive parameter's name, as in [`Params`].
pub const PARAMETERS: [&str; 19] = [
    "persist_s",
    "clear_s",
    "dwell_s",
    "max_motion",
    "min_count",
    "line",
    "direction",
    "min_travel",
    "anchor",
    "heading_deg",
    "tolerance_deg",
    "partner_classes",
    "max_gap",
    "min_ratio",
    "classifier",
    "labels",
    "min_score",
    "min_frames",
    "watch",
];

/// Primitive parameters, all optional: a camera's value wins over the catalog's, which wins
/// over the primitive's default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Seconds a condition must hold before it counts.
    pub persist_s: Option<f64>,
    /// Seconds without the condition before an incident ends.
    pub clear_s: Option<f64>,
    /// Seconds an object must stay (dwell: also nearly still).
    pub dwell_s: Option<f64>,
    /// How far an object's centre may drift, as a fraction of its box size, and still be still.
    pub max_motion: Option<f32>,
    pub min_count: Option<usize>,
    /// A line segment `[[x1, y1], [x2, y2]]`, normalized.
    pub line: Option<[[f32; 2]; 2]>,
    pub direction: Option<CrossDirection>,
    /// How far (normalized) an object must travel for a crossing or a heading to count.
    pub min_travel: Option<f32>,
    pub anchor: Option<Anchor>,
    /// Allowed heading, degrees clockwise from image-up.
    pub heading_deg: Option<f32>,
    pub tolerance_deg: Option<f32>,
    /// `pair`: the classes the subject pairs with; `absence`: the classes whose presence arms
    /// the rule.
    pub partner_classes: Option<Vec<String>>,
    /// `pair`: the largest gap between the two boxes, normalized.
    pub max_gap: Option<f32>,
    /// `area_ratio`: the covered fraction of the zone that starts an incident.
    pub min_ratio: Option<f32>,
    /// `cascade`: the classifier model's name.
    pub classifier: Option<String>,
    pub labels: Option<Vec<String>>,
    pub min_score: Option<f32>,
    pub min_frames: Option<u32>,
    /// `plate_watch`: the plates to look for (with the node's `plates.watch`).
    pub watch: Option<Vec<String>>,
}

impl Params {
    /// These values where set, `fallback`'s elsewhere.
    pub fn or(&self, fallback: &Params) -> Params {
        macro_rules! pick {
            ($($field:ident),*) => {
                Params { $($field: self.$field.clone().or_else(|| fallback.$field.clone())),* }
            };
        }
        pick!(
            persist_s,
            clear_s,
            dwell_s,
            max_motion,
            min_count,
            line,
            direction,
            min_travel,
            anchor,
            heading_deg,
            tolerance_deg,
            partner_classes,
            max_gap,
            min_ratio,
            classifier,
            labels,
            min_score,
            min_frames,
            watch
        )
    }

    /// The parameters that are set, as `(name, value)` in alphabetical order.
    pub fn set(&self) -> Vec<(String, serde_json::Value)> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(fields)) => {
                fields.into_iter().filter(|(_, v)| !v.is_null()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// `name = value` for each parameter that is set, as an operator would write it.
    pub fn describe(&self) -> String {
        let fields: Vec<String> =
            self.set().iter().map(|(k, v)| format!("{k} = {}", plain(v))).collect();
        fields.join(", ")
    }

    /// Problems with these values for `kind`, as `(parameter, message)`: parameters it does not
    /// take, required ones missing, values out of range.
    pub fn problems(&self, kind: PrimitiveKind) -> Vec<(&'static str, String)> {
        let set = self.set();
        let is_set = |name: &str| set.iter().any(|(k, _)| k == name);
        let mut problems: Vec<(&'static str, String)> = PARAMETERS
            .iter()
            .filter(|name| is_set(name) && !kind.parameters().contains(name))
            .map(|name| (*name, format!("does not apply to {} algorithms", kind.name())))
            .collect();
        for name in kind.required() {
            if !is_set(name) {
                problems.push((name, format!("is required by {} algorithms", kind.name())));
            }
        }
        let seconds =
            [("persist_s", self.persist_s), ("clear_s", self.clear_s), ("dwell_s", self.dwell_s)];
        for (name, value) in seconds {
            if let Some(problem) = value.and_then(seconds_problem) {
                problems.push((name, problem));
            }
        }
        let fractions = [
            ("max_motion", self.max_motion),
            ("min_travel", self.min_travel),
            ("max_gap", self.max_gap),
            ("min_ratio", self.min_ratio),
            ("min_score", self.min_score),
        ];
        for (name, value) in fractions {
            if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                problems.push((name, "must be between 0 and 1".into()));
            }
        }
        if let Some(line) = self.line {
            if line.iter().flatten().any(|c| !(0.0..=1.0).contains(c)) {
                problems.push(("line", "points must lie in the image: 0 to 1".into()));
            } else if line[0] == line[1] {
                problems.push(("line", "needs two different points".into()));
            }
        }
        if self.min_count == Some(0) {
            problems.push(("min_count", "must be at least 1".into()));
        }
        if self.min_frames == Some(0) {
            problems.push(("min_frames", "must be at least 1".into()));
        }
        if self.heading_deg.is_some_and(|v| !v.is_finite()) {
            problems.push(("heading_deg", "must be a number of degrees".into()));
        }
        if self.labels.as_ref().is_some_and(Vec::is_empty) {
            problems.push(("labels", "needs at least one label".into()));
        }
        if self.partner_classes.as_ref().is_some_and(Vec::is_empty) {
            problems.push(("partner_classes", "needs at least one class".into()));
        }
        for pattern in self.watch.iter().flatten() {
            if let Some(problem) = super::plates::pattern_problem(pattern) {
                problems.push(("watch", problem));
            }
        }
        if self.tolerance_deg.is_some_and(|v| !(0.0..=180.0).contains(&v)) {
            problems.push(("tolerance_deg", "must be between 0 and 180".into()));
        }
        problems
    }
}
