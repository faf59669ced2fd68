//! The page's config editor: zones, lines and algorithm settings changed in the config file's
//! text with `toml_edit`, so its comments and layout stay as the installer wrote them.
//!
//! The page sends an [`EditRequest`]; the node's config thread applies it to the file's current
//! text ([`apply`]), checks the whole result as a reload would, and only then keeps the old file
//! as a backup, writes the new one and runs it (see `crate::node`). Mistakes come back keyed
//! like the config's own errors (`cameras[0].algorithms[1].dwell_s`), for the page to show
//! next to the field.

use serde::{Deserialize, Serialize};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

/// One change to a camera of the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum Change {
    /// Sets zone `zone`'s polygon (fractions of the frame), adding the zone if it is new.
    Zone { zone: String, polygon: Vec<[f64; 2]> },
    /// Sets key `key` of the camera's algorithm number `algorithm` (from 0, in file order) to
    /// `value`, TOML text such as `8`, `"Daily 18:00-07:00"` or `[[0.3, 0.4], [0.3, 0.2]]`;
    /// `null` removes the key (the catalog's default applies again).
    Algorithm { algorithm: usize, key: String, value: Option<String> },
}

/// A mistake, keyed as the config's errors are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub key: String,
    pub message: String,
}

impl FieldError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError { key: key.into(), message: message.into() }
    }
}

/// What the page asks the node to change, and where the answer goes: the new config's
/// SHA-256, or every mistake.
pub struct EditRequest {
    pub camera: String,
    pub changes: Vec<Change>,
    /// Who asks, for the log.
    pub by: String,
    pub reply: tokio::sync::oneshot::Sender<Result<String, Vec<FieldError>>>,
}

/// `text` with `changes` made to camera `camera`, comments and layout kept.
pub fn apply(text: &str, camera: &str, changes: &[Change]) -> Result<String, Vec<FieldError>> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| vec![FieldError::new("", format!("the config is not TOML: {e}"))])?;
    let cameras = doc.get_mut("cameras").and_then(Item::as_array_of_tables_mut);
    let found = cameras.and_then(|cameras| {
        cameras
            .iter_mut()
            .enumerate()
            .find(|(_, t)| t.get("id").and_then(Item::as_str) == Some(camera))
    });
    let Some((index, table)) = found else {
        return Err(vec![FieldError::new(
            "cameras",
            format!("no camera `{camera}` in the config"),
        )]);
    };
    let mut errors = Vec::new();
    for change in changes {
        let done = match change {
            Change::Zone { zone, polygon } => set_zone(table, index, zone, polygon),
            Change::Algorithm { algorithm, key, value } => {
                set_algorithm(table, index, *algorithm, key, value.as_deref())
            }
        };
        errors.extend(done.err());
    }
    match errors.is_empty() {
        true => Ok(doc.to_string()),
        false => Err(errors),
    }
}

fn set_zone(
    camera: &mut Table,
    index: usize,
    name: &str,
    polygon: &[[f64; 2]],
) -> Result<(), FieldError> {
    let points: Array = polygon
        .iter()
        .map(|[x, y]| Value::Array([round(*x), round(*y)].into_iter().collect()))
        .collect();
    let polygon = Value::Array(points);
    match camera.get_mut("zones") {
        None => {
            let mut zones = ArrayOfTables::new();
            zones.push(zone_table(name, polygon));
            camera.insert("zones", Item::ArrayOfTables(zones));
        }
        Some(Item::ArrayOfTables(zones)) => {
            let named =
                zones.iter().position(|z| z.get("name").and_then(Item::as_str) == Some(name));
            match named.and_then(|i| zones.get_mut(i)) {
                Some(zone) => replace(zone, "polygon", polygon),
                None => zones.push(zone_table(name, polygon)),
            }
        }
        Some(Item::Value(Value::Array(zones))) => {
            let named = zones
                .iter_mut()
                .filter_map(Value::as_inline_table_mut)
                .find(|z| z.get("name").and_then(Value::as_str) == Some(name));
            match named {
                Some(zone) => replace_inline(zone, "polygon", polygon),
                None => {
                    let mut zone = InlineTable::new();
                    zone.insert("name", name.into());
                    zone.insert("polygon", polygon);
                    zones.push(zone);
                }
            }
        }
        Some(_) => {
            return Err(FieldError::new(
                format!("cameras[{index}].zones"),
                "is not a list of zones",
            ));
        }
    }
    Ok(())
}

/// Three decimals: a pixel of a 1000-pixel-wide frame, as the page draws them.
fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn zone_table(name: &str, polygon: Value) -> Table {
    let mut zone = Table::new();
    zone.insert("name", Item::Value(name.into()));
    zone.insert("polygon", Item::Value(polygon));
    zone
}

/// Sets `key` in `table` to `value`, keeping the old value's comments and the key's
/// indentation; a new key is indented as the table's first one.
fn replace(table: &mut Table, key: &str, mut value: Value) {
    if let Some(item) = table.get_mut(key) {
        if let Some(old) = item.as_value() {
            *value.decor_mut() = old.decor().clone();
        }
        *item = Item::Value(value);
        return;
    }
    let indent =
        table.iter().next().and_then(|(first, _)| table.key(first)).map(|k| k.leaf_decor().clone());
    table.insert(key, Item::Value(value));
    if let (Some(indent), Some(mut added)) = (indent, table.key_mut(key)) {
        *added.leaf_decor_mut() = indent;
    }
}

/// [`replace`] in an inline table.
fn replace_inline(table: &mut InlineTable, key: &str, mut value: Value) {
    match table.get_mut(key) {
        Some(old) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        None => drop(table.insert(key, value)),
    }
}

fn set_algorithm(
    camera: &mut Table,
    index: usize,
    algorithm: usize,
    key: &str,
    value: Option<&str>,
) -> Result<(), FieldError> {
    let path = format!("cameras[{index}].algorithms[{algorithm}]");
    let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    if key.is_empty() || !key.chars().all(plain) {
        return Err(FieldError::new(path, format!("`{key}` is not a setting name")));
    }
    let field = format!("{path}.{key}");
    let value = match value {
        Some(text) => Some(parse_value(text).map_err(|e| FieldError::new(&field, e))?),
        None => None,
    };
    let missing = || FieldError::new(&path, "the camera has no such algorithm");
    match camera.get_mut("algorithms") {
        Some(Item::ArrayOfTables(all)) => {
            let table = all.get_mut(algorithm).ok_or_else(missing)?;
            match value {
                Some(value) => replace(table, key, value),
                None => drop(table.remove(key)),
            }
        }
        Some(Item::Value(Value::Array(all))) => {
            let table =
                all.get_mut(algorithm).and_then(Value::as_inline_table_mut).ok_or_else(missing)?;
            match value {
                Some(value) => replace_inline(table, key, value),
                None => {
                    table.remove(key);
                    // The space before the closing brace went with the last key.
                    table.fmt();
                }
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

/// A TOML value written as the page's field holds it.
fn parse_value(text: &str) -> Result<Value, String> {
    let doc: DocumentMut = format!("v = {text}\n")
        .parse()
        .map_err(|_| format!("`{text}` is not a value: write a number, \"text\" or [a, list]"))?;
    let value = doc.get("v").and_then(Item::as_value).cloned();
    let mut value = value.ok_or_else(|| format!("`{text}` is not a single value"))?;
    value.decor_mut().clear();
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"# The kerb camera.
[[cameras]]
id = "kerb"
url = "rtsp://cam/1" # the gate

  # Where parking is not allowed.
  [[cameras.zones]]
  name = "no-parking"
  polygon = [[0.8, 0.0], [1.0, 0.0], [1.0, 0.25]] # the top right

  # Vehicles parked there.
  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "no-parking"
  dwell_s = 5 # seconds

[[cameras]]
id = "gate"
url = "rtsp://cam/2"
zones = [{ name = "in", polygon = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5]] }]
algorithms = [{ type = "intrusion", zone = "in" }]
"#;

    #[test]
    fn zones_and_settings_change_and_the_comments_stay() {
        let moved = Change::Zone {
            zone: "no-parking".into(),
            polygon: vec![[0.1, 0.2], [0.3, 0.2], [0.3333333, 0.4]],
        };
        let dwell =
            Change::Algorithm { algorithm: 0, key: "dwell_s".into(), value: Some("8".into()) };
        let schedule = Change::Algorithm {
            algorithm: 0,
            key: "schedule".into(),
            value: Some(r#"["Daily 18:00-07:00"]"#.into()),
        };
        let text = apply(CONFIG, "kerb", &[moved, dwell, schedule]).unwrap();
        for kept in [
            "# The kerb camera.",
            "# the gate",
            "# Where parking is not allowed.",
            "# the top right",
            "# seconds",
            "# Vehicles parked there.",
        ] {
            assert!(text.contains(kept), "{kept} lost:\n{text}");
        }
        assert!(
            text.contains("polygon = [[0.1, 0.2], [0.3, 0.2], [0.333, 0.4]] # the top right"),
            "{text}"
        );
        assert!(text.contains("dwell_s = 8 # seconds"), "{text}");
        assert!(text.contains(r#"schedule = ["Daily 18:00-07:00"]"#), "{text}");
        // Only those lines changed, and the new one is indented as its neighbours.
        let new: Vec<&str> = text.lines().filter(|l| !CONFIG.lines().any(|o| o == *l)).collect();
        assert_eq!(new.len(), 3, "{text}");
        assert!(new.iter().all(|l| l.starts_with("  ")), "{text}");
        let gone = CONFIG.lines().filter(|o| !text.lines().any(|l| l == *o)).count();
        assert_eq!(gone, 2, "{text}");

        let added =
            Change::Zone { zone: "lane".into(), polygon: vec![[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]] };
        let text = apply(CONFIG, "kerb", &[added]).unwrap();
        assert!(
            text.contains("name = \"lane\"\npolygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0]]"),
            "{text}"
        );
        let config: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(config["cameras"][0]["zones"][1]["name"].as_str(), Some("lane"));

        // Inline tables too.
        let inline =
            Change::Zone { zone: "in".into(), polygon: vec![[0.1, 0.1], [0.6, 0.1], [0.6, 0.6]] };
        let removed = Change::Algorithm { algorithm: 0, key: "zone".into(), value: None };
        let text = apply(CONFIG, "gate", &[inline, removed]).unwrap();
        assert!(
            text.contains(
                r#"zones = [{ name = "in", polygon = [[0.1, 0.1], [0.6, 0.1], [0.6, 0.6]] }]"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"algorithms = [{ type = "intrusion" }]"#), "{text}");
    }

    #[test]
    fn mistakes_name_their_field() {
        let e = apply(CONFIG, "nowhere", &[]).unwrap_err();
        assert_eq!(e[0].key, "cameras");
        let bad = Change::Algorithm {
            algorithm: 0,
            key: "dwell_s".into(),
            value: Some("five seconds".into()),
        };
        let e = apply(CONFIG, "kerb", &[bad]).unwrap_err();
        assert_eq!(e[0].key, "cameras[0].algorithms[0].dwell_s");
        assert!(e[0].message.contains("is not a value"), "{}", e[0].message);
        let e = apply(
            CONFIG,
            "gate",
            &[Change::Algorithm { algorithm: 3, key: "x".into(), value: None }],
        );
        assert_eq!(e.unwrap_err()[0].key, "cameras[1].algorithms[3]");
        let e = apply(
            CONFIG,
            "kerb",
            &[Change::Algorithm { algorithm: 0, key: "a.b".into(), value: None }],
        );
        assert!(e.unwrap_err()[0].message.contains("not a setting name"));
    }
}
