//! The algorithm catalog: the named city-event algorithms a dispatch centre handles (机动车违停,
//! 占道经营, 人员聚集 …), each defined as data in `catalog/algorithms.toml` (built into the
//! binary) on top of a primitive: names, category, default classes and parameters. This is the
//! data; the rules stage runs it (`rules::spec`).

use std::sync::OnceLock;

use serde::Deserialize;

use super::params::{Params, PrimitiveKind, Severity};

/// The groups of the national urban-management standard GB/T 30428, plus traffic, water and
/// kitchen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Appearance,
    Advertising,
    Construction,
    StreetOrder,
    Emergency,
    Traffic,
    Water,
    Kitchen,
}

impl Category {
    pub fn name(&self) -> &'static str {
        match self {
            Category::Appearance => "appearance",
            Category::Advertising => "advertising",
            Category::Construction => "construction",
            Category::StreetOrder => "street_order",
            Category::Emergency => "emergency",
            Category::Traffic => "traffic",
            Category::Water => "water",
            Category::Kitchen => "kitchen",
        }
    }
}

/// One named algorithm.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub category: Category,
    pub primitive: PrimitiveKind,
    /// The classes it looks for (for `cascade`: whose crops the classifier sees).
    pub classes: Vec<String>,
    #[serde(default)]
    pub severity: Severity,
    pub cooldown_s: f64,
    pub update_s: f64,
    /// The fewest analysed frames a second it works with: what decides whether a camera may
    /// decode key frames only, or be patrolled.
    pub min_fps: f64,
    pub description: String,
    #[serde(default)]
    pub params: Params,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    algorithm: Vec<Entry>,
}

/// Every algorithm, in catalog order.
pub fn entries() -> &'static [Entry] {
    static CATALOG: OnceLock<Vec<Entry>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        // Built-in data: the catalog tests prove it parses and every entry is complete.
        toml::from_str::<File>(include_str!("../../catalog/algorithms.toml"))
            .expect("catalog/algorithms.toml is valid")
            .algorithm
    })
}

pub fn find(id: &str) -> Option<&'static Entry> {
    entries().iter().find(|e| e.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_has_every_required_algorithm_once() {
        let ids: Vec<&str> = entries().iter().map(|e| e.id.as_str()).collect();
        assert!(ids.len() >= 46, "{} algorithms", ids.len());
        let mut unique = ids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "duplicate ids");
        for id in ["illegal_parking", "crowd_gathering", "tripwire", "stove_unattended"] {
            assert!(find(id).is_some(), "{id} missing");
        }
        // What crosses or moves needs frames close together; what stays for minutes does not.
        for id in ["tripwire", "wrong_way", "loitering"] {
            assert!(find(id).unwrap().min_fps >= 5.0, "{id}");
        }
        for id in ["illegal_parking", "exposed_garbage", "material_piling", "illegal_banner"] {
            assert!(find(id).unwrap().min_fps <= 0.5, "{id}");
        }
    }

    const SITE_SPECIFIC: [&str; 2] = ["line", "heading_deg"];

    #[test]
    fn every_entry_is_complete_and_its_parameters_fit_its_primitive() {
        for e in entries() {
            assert!(!e.name_zh.is_empty() && !e.name_en.is_empty() && !e.description.is_empty());
            assert!(!e.classes.is_empty(), "{}: no classes", e.id);
            assert!(e.cooldown_s >= 0.0 && e.update_s > 0.0, "{}", e.id);
            assert!(e.min_fps > 0.0 && e.min_fps <= 30.0, "{}: min_fps {}", e.id, e.min_fps);
            // Where a line or a heading goes depends on the site: the catalog leaves them out so
            // that a camera config without them is refused.
            let problems: Vec<_> = e
                .params
                .problems(e.primitive)
                .into_iter()
                .filter(|(name, _)| !SITE_SPECIFIC.contains(name))
                .collect();
            assert_eq!(problems, vec![], "{}", e.id);
        }
    }
}
