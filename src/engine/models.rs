//! The node's loaded models: each configured model loaded once and shared by the cameras using
//! it; on a reload, the models whose settings and files did not change are kept.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::config::{ClassList, Config, ConfigErrors, ModelConfig, ModelKind, sha256_hex};
use crate::infer::{Classifier, Detector};
use crate::plates::{PlateReader, PlateService};
use crate::wire::ModelReport;

/// The loaded models by name, each shared by the cameras that use it.
#[derive(Default, Clone)]
pub struct Models {
    pub detectors: HashMap<String, Arc<Detector>>,
    pub classifiers: HashMap<String, Arc<Classifier>>,
    /// The plate worker, with `[plates]`.
    pub plates: Option<PlateService>,
    /// SHA-256 of each model's files (weights and class list) as loaded.
    files: HashMap<String, String>,
}

impl Models {
    /// Where each of `config`'s loaded models runs, for the node's status.
    pub fn reports(&self, config: &Config) -> Vec<ModelReport> {
        let summary = |name: &str| {
            (self.detectors.get(name).map(|d| &d.summary))
                .or_else(|| self.classifiers.get(name).map(|c| &c.summary))
        };
        config
            .models
            .iter()
            .filter_map(|model| {
                let placement = &summary(&model.name)?.placement;
                Some(ModelReport {
                    name: model.name.clone(),
                    device: model.device.name().to_string(),
                    provider: placement.first().map(|(provider, _)| provider.clone()),
                    nodes: placement.iter().cloned().collect(),
                })
            })
            .collect()
    }

    /// Moves model `name` over from `other`.
    fn take(&mut self, other: &Models, name: &str) {
        if let Some(d) = other.detectors.get(name) {
            self.detectors.insert(name.to_string(), d.clone());
        }
        if let Some(c) = other.classifiers.get(name) {
            self.classifiers.insert(name.to_string(), c.clone());
        }
        if let Some(f) = other.files.get(name) {
            self.files.insert(name.to_string(), f.clone());
        }
    }
}

/// What a model's files hold: the SHA-256 of its weights (`weights`, when already known) and of
/// its class-list file; None when a file cannot be read.
fn model_files(model: &ModelConfig, weights: Option<&str>) -> Option<String> {
    let weights = match weights {
        Some(known) => known.to_string(),
        None => sha256_hex(&std::fs::read(&model.path).ok()?),
    };
    let classes = match &model.classes {
        ClassList::File(path) => sha256_hex(&std::fs::read(path).ok()?),
        ClassList::Inline(_) => String::new(),
    };
    Some(format!("{weights} {classes}"))
}

/// Loads every configured model once; a model that does not fit its config is a config error.
pub fn load_models(config: &Config) -> Result<Models, ConfigErrors> {
    reload_models(config, None).map(|(models, _)| models)
}

/// Loads the models of `config`, reusing those of `previous` (a running config and its models)
/// whose settings and files have not changed; also returns the names of the models loaded anew.
pub fn reload_models(
    config: &Config,
    previous: Option<(&Config, &Models)>,
) -> Result<(Models, BTreeSet<String>), ConfigErrors> {
    let mut models = Models::default();
    let mut loaded_anew = BTreeSet::new();
    let mut errors = Vec::new();
    for (i, model) in config.models.iter().enumerate() {
        if let Some((old_config, old_models)) = previous
            && old_config.model(&model.name) == Some(model)
            && old_models
                .files
                .get(&model.name)
                .is_some_and(|f| model_files(model, None).as_ref() == Some(f))
        {
            models.take(old_models, &model.name);
            continue;
        }
        loaded_anew.insert(model.name.clone());
        let loaded = match model.format {
            ModelKind::Classifier => Classifier::load(model).map(|c| {
                let weights = c.summary.sha256.clone();
                models.classifiers.insert(model.name.clone(), Arc::new(c));
                weights
            }),
            ModelKind::Detector(_) => Detector::load(model).map(|d| {
                let weights = d.summary.sha256.clone();
                models.detectors.insert(model.name.clone(), Arc::new(d));
                weights
            }),
        };
        match loaded {
            // The weights as loaded, not as read again: the file may have changed since.
            Ok(weights) => {
                if let Some(files) = model_files(model, Some(&weights)) {
                    models.files.insert(model.name.clone(), files);
                }
            }
            Err(e) => errors.push(config.error(format!("models[{i}].{}", e.key()), e.to_string())),
        }
    }
    if let Some(plates) = &config.plates {
        let unchanged = previous.and_then(|(old_config, old_models)| {
            old_models.plates.clone().filter(|_| old_config.plates.as_ref() == Some(plates))
        });
        let started = match unchanged {
            Some(service) => Ok(service),
            None => PlateReader::load(plates)
                .map_err(|e| config.error(format!("plates.{}", e.0), e.1.to_string()))
                .and_then(|reader| {
                    PlateService::start(reader, plates).map_err(|e| {
                        config.error("plates", format!("cannot start the plate worker: {e}"))
                    })
                }),
        };
        match started {
            Ok(service) => models.plates = Some(service),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok((models, loaded_anew)) } else { Err(ConfigErrors(errors)) }
}
