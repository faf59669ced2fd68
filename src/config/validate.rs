//! The whole-file checks: what only the whole config can tell (duplicate ids, a camera naming
//! an unknown model or zone, files that do not exist, settings that do not fit together). Each
//! returns every mistake it finds, with its key.

use std::collections::HashSet;
use std::path::Path;

use super::drone::{CameraKind, FIELDS, REQUIRED_FIELDS, TelemetrySource};
use super::mqtt::MAX_PACKET_BYTES_RANGE;
use super::params::seconds_problem;
use super::pipeline::{pipeline_description, record_description};
use super::{
    AlgorithmConfig, CameraConfig, Config, ConfigError, Decode, Device, Fallback, KEYFRAME_FPS,
    ModelConfig, ModelKind, OpenvinoDevice, PATROL_FPS, Params, PatrolConfig, PlateScope,
    Precision, PrimitiveKind, Schedule, Source, pattern_problem,
};

impl Config {
    pub(super) fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: String, message: String| {
            if !ok {
                errors.push(self.error(key, message));
            }
        };
        for (key, id) in
            [("node.id", &self.node.id), ("mqtt.topic_prefix", &self.mqtt.topic_prefix)]
        {
            if let Some(problem) = id_problem(id) {
                check(false, key.into(), problem);
            }
        }
        let mqtt_files = [
            ("password_file", &self.mqtt.password_file),
            ("ca_file", &self.mqtt.ca_file),
            ("cert_file", &self.mqtt.cert_file),
            ("key_file", &self.mqtt.key_file),
        ];
        for (name, file) in mqtt_files {
            if let Some(problem) = file.as_deref().and_then(|p| file_problem(p, "file")) {
                check(false, format!("mqtt.{name}"), problem);
            }
        }
        for (name, file) in &mqtt_files[1..] {
            check(
                file.is_none() || self.mqtt.url.tls,
                format!("mqtt.{name}"),
                "is only used with TLS: make mqtt.url mqtts://".into(),
            );
        }
        check(
            !(self.mqtt.embedded_broker && self.mqtt.url.tls),
            "mqtt.embedded_broker".into(),
            "the embedded broker does not speak TLS: use an mqtt:// url with it".into(),
        );
        check(
            self.mqtt.cert_file.is_some() == self.mqtt.key_file.is_some(),
            "mqtt.cert_file".into(),
            "a client certificate needs mqtt.key_file too, and a key its cert_file".into(),
        );
        check(
            self.mqtt.stats_interval_s >= 1,
            "mqtt.stats_interval_s".into(),
            "must be at least 1 second".into(),
        );
        check(
            self.mqtt.max_packet_bytes.is_none_or(|n| MAX_PACKET_BYTES_RANGE.contains(&n)),
            "mqtt.max_packet_bytes".into(),
            "must be between 4 KiB (an incident's JSON must fit) and 256 MiB (MQTT's own limit)"
                .into(),
        );
        check(
            self.outbox.max_bytes >= 64 << 10,
            "outbox.max_bytes".into(),
            "must be at least 64 KiB".into(),
        );
        for (name, value) in
            [("clip_pre_s", self.evidence.clip_pre_s), ("clip_post_s", self.evidence.clip_post_s)]
        {
            check(
                (0.0..=120.0).contains(&value),
                format!("evidence.{name}"),
                "must be between 0 and 120 seconds".into(),
            );
        }
        check(
            !self.http.enabled
                || self.http.listen.ip().is_loopback()
                || self.http.users_file.is_some(),
            "http.listen".into(),
            format!(
                "{} is not a loopback address, and without sign-in the page would show the \
                 cameras and change the config for anyone who reaches it: set http.users_file \
                 (users added with `cityeye user add`), or listen on 127.0.0.1",
                self.http.listen
            ),
        );
        check(
            self.http.session_hours > 0.0 && self.http.session_hours <= 24.0 * 30.0,
            "http.session_hours".into(),
            "must be above 0 and at most 720 (30 days)".into(),
        );
        check(
            self.verdicts.suppress_days > 0.0 && self.verdicts.suppress_days <= 3650.0,
            "verdicts.suppress_days".into(),
            "must be above 0 and at most 3650 (ten years)".into(),
        );
        check(
            self.evidence.retain_days > 0.0,
            "evidence.retain_days".into(),
            "must be above 0".into(),
        );
        check(
            (5..=65_535).contains(&self.mqtt.keep_alive_s),
            "mqtt.keep_alive_s".into(),
            "must be between 5 and 65535 seconds".into(),
        );
        check(
            self.mqtt.password_file.is_none() || self.mqtt.username.is_some(),
            "mqtt.password_file".into(),
            "a password needs mqtt.username too".into(),
        );
        for (key, dup) in duplicates(self.models.iter().map(|m| m.name.as_str()), "models", "name")
        {
            check(false, key, format!("duplicate model name `{dup}`"));
        }
        for (i, model) in self.models.iter().enumerate() {
            errors.extend(self.validate_model(i, model));
        }
        for (key, dup) in duplicates(self.cameras.iter().map(|c| c.id.as_str()), "cameras", "id") {
            errors.push(self.error(key, format!("duplicate camera id `{dup}`")));
        }
        for (i, camera) in self.cameras.iter().enumerate() {
            errors.extend(self.validate_camera(i, camera));
        }
        errors.extend(self.validate_patrols());
        errors.extend(self.validate_plates());
        errors
    }

    /// `[plates]`: its models' files, its numbers, and its lists.
    fn validate_plates(&self) -> Vec<ConfigError> {
        let Some(plates) = &self.plates else { return Vec::new() };
        let mut errors = Vec::new();
        let files = [
            ("detector", &plates.detector, "text detector model"),
            ("recognizer", &plates.recognizer, "text recognizer model"),
            ("dictionary", &plates.dictionary, "recognizer's dictionary"),
        ];
        for (name, path, what) in files {
            if let Some(problem) = file_problem(path, what) {
                let hint = "; scripts/setup installs the built-in ones";
                errors.push(self.error(format!("plates.{name}"), format!("{problem}{hint}")));
            }
        }
        if let Some(problem) = seconds_problem(plates.every_s) {
            errors.push(self.error("plates.every_s", problem));
        }
        if !(0.0..=1.0).contains(&plates.min_confidence) {
            errors.push(self.error("plates.min_confidence", "must be between 0 and 1"));
        }
        if !(1..=64).contains(&plates.threads) {
            errors.push(self.error("plates.threads", "must be between 1 and 64"));
        }
        errors.extend(self.validate_plate_list("plates.allow", &plates.allow));
        errors.extend(self.validate_plate_list("plates.watch", &plates.watch));
        errors
    }

    /// Each entry of a plate list (`key`) is a plate number or a pattern of one.
    fn validate_plate_list(&self, key: &str, list: &[String]) -> Vec<ConfigError> {
        let problems = list.iter().enumerate().filter_map(|(n, entry)| {
            pattern_problem(entry).map(|problem| self.error(format!("{key}[{n}]"), problem))
        });
        problems.collect()
    }

    fn validate_patrols(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        for (key, dup) in duplicates(self.patrols.iter().map(|p| p.id.as_str()), "patrols", "id") {
            errors.push(self.error(key, format!("duplicate patrol id `{dup}`")));
        }
        let ids = || self.cameras.iter().map(|c| c.id.as_str());
        let known: Vec<&str> = ids().collect();
        // Which patrol each camera is in, by the first patrol naming it.
        let mut patrolled: Vec<(&str, usize)> = Vec::new();
        for (j, patrol) in self.patrols.iter().enumerate() {
            let key = |k: &str| format!("patrols[{j}].{k}");
            if let Some(problem) = id_problem(&patrol.id) {
                errors.push(self.error(key("id"), problem));
            }
            if patrol.slots == 0 {
                errors.push(self.error(key("slots"), "must be at least 1: cameras open at once"));
            }
            if !(patrol.visit_s > 0.0 && patrol.visit_s <= 3600.0) {
                errors.push(self.error(key("visit_s"), "must be above 0 and at most 3600 seconds"));
            }
            if patrol.cameras.is_empty() {
                errors.push(self.error(key("cameras"), "needs at least one camera id or glob"));
            }
            for pattern in &patrol.cameras {
                if !ids().any(|id| PatrolConfig::names(pattern, id)) {
                    errors.push(self.error(
                        key("cameras"),
                        format!(
                            "unknown camera `{pattern}` (no camera id is, or matches, it); \
                             cameras defined: {}",
                            list_or_none(&known)
                        ),
                    ));
                }
            }
            for id in patrol.members(ids()) {
                if let Some((_, k)) = patrolled.iter().find(|(c, _)| *c == id) {
                    errors.push(self.error(
                        key("cameras"),
                        format!(
                            "camera `{id}` is already in patrol `{}` (patrols[{k}]): a camera \
                             belongs to one patrol at most",
                            self.patrols[*k].id
                        ),
                    ));
                    continue;
                }
                patrolled.push((id, j));
                let Some(i) = known.iter().position(|c| *c == id) else { continue };
                for (a, algorithm) in self.cameras[i].algorithms.iter().enumerate() {
                    let Some(entry) = super::catalog::find(&algorithm.kind) else { continue };
                    if entry.min_fps > PATROL_FPS {
                        errors.push(self.error(
                            format!("cameras[{i}].algorithms[{a}].type"),
                            format!(
                                "{} needs {} frames a second without gaps, but camera `{id}` is \
                                 patrolled by `{}` and watched only during its visits; a \
                                 patrolled camera runs algorithms needing at most {PATROL_FPS} \
                                 frame a second (slow events)",
                                entry.id, entry.min_fps, patrol.id
                            ),
                        ));
                    }
                }
            }
        }
        errors
    }

    fn validate_model(&self, i: usize, model: &ModelConfig) -> Vec<ConfigError> {
        let key = |k: &str| format!("models[{i}].{k}");
        let mut errors = Vec::new();
        if let Some(problem) = file_problem(&model.path, "model file") {
            errors.push(self.error(key("path"), problem));
        }
        match model.class_names() {
            Ok(names) if names.is_empty() => {
                errors.push(self.error(key("classes"), "the class list is empty"))
            }
            Ok(names) => {
                for from in model.class_map.keys().filter(|c| !names.contains(c)) {
                    errors.push(
                        self.error(
                            key("class_map"),
                            format!("`{from}` is not a class of this model"),
                        ),
                    );
                }
            }
            Err(e) => errors.push(self.error(key("classes"), e)),
        }
        if !(model.confidence > 0.0 && model.confidence <= 1.0) {
            errors.push(self.error(key("confidence"), "must be above 0 and at most 1"));
        }
        for (name, value) in
            [("nms_iou", model.nms_iou), ("cross_class_iou", model.cross_class_iou)]
        {
            if !(value > 0.0 && value <= 1.0) {
                errors.push(self.error(key(name), "must be above 0 and at most 1"));
            }
        }
        if model.threads == 0 {
            errors.push(self.error(key("threads"), "must be at least 1"));
        }
        if model.sessions.is_some_and(|n| !(1..=16).contains(&n)) {
            errors.push(self.error(key("sessions"), "must be 1 to 16"));
        }
        if let Some([w, h]) = model.input_size
            && (w == 0 || h == 0 || w % 32 != 0 || h % 32 != 0)
        {
            errors.push(
                self.error(key("input_size"), "width and height must be positive multiples of 32"),
            );
        }
        if model.std.is_some_and(|std| std.iter().any(|s| !(s.is_finite() && *s > 0.0))) {
            errors.push(self.error(key("std"), "each value must be above 0"));
        }
        if model.mean.is_some_and(|mean| mean.iter().any(|m| !m.is_finite())) {
            errors.push(self.error(key("mean"), "each value must be a finite number"));
        }
        if !(1..=64).contains(&model.max_batch) {
            errors.push(self.error(key("max_batch"), "must be 1 to 64"));
        }
        if model.batch_wait_ms > 1000 {
            errors.push(self.error(key("batch_wait_ms"), "must be at most 1000"));
        }
        errors.extend(self.validate_device(i, model));
        errors
    }

    /// Device options only mean something on their device: one set for another is a mistake.
    fn validate_device(&self, i: usize, model: &ModelConfig) -> Vec<ConfigError> {
        let device = model.device;
        let unused = |option: &str, default: bool, takes: &[Device]| {
            (!default && !takes.contains(&device)).then(|| {
                let takers: Vec<&str> = takes.iter().map(|d| d.name()).collect();
                self.error(
                    format!("models[{i}].{option}"),
                    format!(
                        "is for device {}; this model's device is `{}`",
                        takers.join(" or "),
                        device.name()
                    ),
                )
            })
        };
        [
            unused(
                "openvino_device",
                model.openvino_device == OpenvinoDevice::Cpu,
                &[Device::Openvino],
            ),
            unused(
                "precision",
                model.precision == Precision::Fp32,
                &[Device::Openvino, Device::Tensorrt],
            ),
            unused("device_id", model.device_id == 0, &[Device::Cuda, Device::Tensorrt]),
            unused(
                "fallback",
                model.fallback == Fallback::Refuse,
                &[Device::Openvino, Device::Cuda, Device::Tensorrt],
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn validate_camera(&self, i: usize, camera: &CameraConfig) -> Vec<ConfigError> {
        let key = |k: &str| format!("cameras[{i}].{k}");
        let mut errors = Vec::new();
        if let Some(problem) = id_problem(&camera.id) {
            errors.push(self.error(key("id"), problem));
        }
        let sources = [("url", Some(&camera.url)), ("record_url", camera.record_url.as_ref())];
        for (name, source) in sources {
            if let Some(Source::File { path }) = source
                && let Some(problem) = file_problem(path, "video file")
            {
                errors.push(self.error(key(name), problem));
            }
        }
        if let Err(e) = pipeline_description(camera, true) {
            errors.push(self.error(key("pipeline"), e));
        }
        if let Some(Err(e)) = record_description(camera, true) {
            errors.push(self.error(key("record_url"), e));
        }
        if camera.transport.is_some() && !matches!(camera.url, Source::Rtsp { .. }) {
            errors.push(self.error(
                key("transport"),
                format!(
                    "applies to rtsp:// and rtsps:// cameras only, not {}",
                    camera.url.masked()
                ),
            ));
        }
        if !(camera.analysis_fps > 0.0 && camera.analysis_fps <= 60.0) {
            errors.push(self.error(key("analysis_fps"), "must be above 0 and at most 60"));
        }
        if camera.decode == Decode::Keyframes
            && let Some((fps, algorithm)) = camera.needed_fps().filter(|(f, _)| *f > KEYFRAME_FPS)
        {
            errors.push(self.error(
                key("decode"),
                format!(
                    "`keyframes` gives one frame per key-frame interval (at most about \
                     {KEYFRAME_FPS} a second), but {algorithm} needs {fps} frames a second; use \
                     decode = \"all\", or \"auto\" to decode key frames only when their rate \
                     serves every algorithm"
                ),
            ));
        }
        if camera.models.is_empty() {
            errors.push(self.error(key("models"), "needs at least one model"));
        }
        let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        for name in &camera.models {
            match self.model(name) {
                None => errors.push(self.error(
                    key("models"),
                    format!("unknown model `{name}`; models defined: {}", list_or_none(&known)),
                )),
                Some(m) if m.format == ModelKind::Classifier => errors.push(self.error(
                    key("models"),
                    format!(
                        "`{name}` is a classifier: a camera's models are detectors; cascade \
                         algorithms name their classifier"
                    ),
                )),
                Some(_) => {}
            }
        }
        let zones = format!("cameras[{i}].zones");
        for (zkey, dup) in duplicates(camera.zones.iter().map(|z| z.name.as_str()), &zones, "name")
        {
            errors.push(self.error(zkey, format!("duplicate zone name `{dup}`")));
        }
        for (j, algorithm) in camera.algorithms.iter().enumerate() {
            errors.extend(self.validate_algorithm(i, camera, j, algorithm));
        }
        errors.extend(self.validate_plate_list(&key("plate_allow"), &camera.plate_allow));
        let no_plates = self.plates.is_none();
        let reads = camera.plates != PlateScope::Incidents;
        if no_plates && (reads || !camera.plate_allow.is_empty()) {
            let set = if reads { "plates" } else { "plate_allow" };
            errors.push(self.error(key(set), "reads plates, which needs a [plates] table"));
        }
        errors.extend(validate_drone(self, i, camera));
        errors
    }

    fn validate_algorithm(
        &self,
        i: usize,
        camera: &CameraConfig,
        j: usize,
        algorithm: &AlgorithmConfig,
    ) -> Vec<ConfigError> {
        let key = |k: &str| format!("cameras[{i}].algorithms[{j}].{k}");
        let mut errors = Vec::new();
        // The algorithm's own settings: the node's plate lists are checked as `plates.*`.
        let Some(resolved) = algorithm.resolve(None, &[]) else {
            return vec![self.error(
                key("type"),
                format!("unknown algorithm `{}`; `cityeye algorithms` lists them", algorithm.kind),
            )];
        };
        let entry = resolved.entry;
        if let Some(zone) = &algorithm.zone
            && !camera.zones.iter().any(|z| &z.name == zone)
        {
            let known: Vec<&str> = camera.zones.iter().map(|z| z.name.as_str()).collect();
            errors.push(self.error(
                key("zone"),
                format!("unknown zone `{zone}`; zones of this camera: {}", list_or_none(&known)),
            ));
        }
        if algorithm.classes.as_ref().is_some_and(Vec::is_empty) {
            errors.push(self.error(key("classes"), "needs at least one class"));
        }
        let provided = self.provided_classes(camera);
        let missing: Vec<String> =
            resolved.needed_classes().into_iter().filter(|c| !provided.contains(c)).collect();
        if !missing.is_empty() && !provided.is_empty() {
            errors.push(self.error(
                key("classes"),
                format!(
                    "{} needs {}, which none of this camera's models ({}) provide; map a model's \
                     class onto it with class_map, or set classes",
                    entry.id,
                    missing.join(", "),
                    camera.models.join(", ")
                ),
            ));
        }
        if let Err(e) = Schedule::parse(algorithm.schedule.as_deref().unwrap_or_default()) {
            errors.push(self.error(key("schedule"), e));
        }
        for (name, value) in
            [("cooldown_s", algorithm.cooldown_s), ("update_s", algorithm.update_s)]
        {
            if let Some(problem) = value.and_then(seconds_problem) {
                errors.push(self.error(key(name), problem));
            }
        }
        for (name, value) in
            [("min_confidence", algorithm.min_confidence), ("min_box_area", algorithm.min_box_area)]
        {
            if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                errors.push(self.error(key(name), "must be between 0 and 1"));
            }
        }
        for (name, problem) in resolved.params.problems(entry.primitive) {
            errors.push(self.error(key(name), problem));
        }
        if entry.primitive == PrimitiveKind::Cascade {
            errors.extend(self.validate_classifier(&key, &resolved.params));
        }
        errors.extend(self.validate_plate_list(&key("plate_allow"), &algorithm.plate_allow));
        let reads_plates = algorithm.plates
            || !algorithm.plate_allow.is_empty()
            || entry.primitive == PrimitiveKind::PlateWatch;
        if reads_plates && self.plates.is_none() {
            errors.push(self.error(
                key(if algorithm.plates { "plates" } else { "type" }),
                format!("{} reads plates, which needs a [plates] table", entry.id),
            ));
        }
        let node_watch = self.plates.as_ref().map_or(0, |p| p.watch.len());
        if entry.primitive == PrimitiveKind::PlateWatch
            && resolved.params.watch.as_ref().is_none_or(Vec::is_empty)
            && node_watch == 0
        {
            errors.push(self.error(
                key("watch"),
                "lists no plate to watch for: set watch here, or plates.watch for every camera",
            ));
        }
        if entry.primitive == PrimitiveKind::LineCross && algorithm.zone.is_some() {
            errors.push(
                self.error(key("zone"), "line_cross algorithms watch their line, not a zone"),
            );
        }
        errors
    }

    /// A cascade algorithm's `classifier` must be a classifier model having its `labels`.
    fn validate_classifier(
        &self,
        key: &dyn Fn(&str) -> String,
        params: &Params,
    ) -> Vec<ConfigError> {
        let Some(name) = &params.classifier else { return Vec::new() };
        let Some(model) = self.models.iter().find(|m| &m.name == name) else {
            let known: Vec<&str> = self
                .models
                .iter()
                .filter(|m| m.format == ModelKind::Classifier)
                .map(|m| m.name.as_str())
                .collect();
            return vec![self.error(
                key("classifier"),
                format!(
                    "no classifier model `{name}`; classifiers defined: {} (a [[models]] entry \
                     with format = \"classifier\")",
                    list_or_none(&known)
                ),
            )];
        };
        if model.format != ModelKind::Classifier {
            return vec![
                self.error(key("classifier"), format!("model `{name}` is not a classifier")),
            ];
        }
        let labels = model.canonical_class_names().unwrap_or_default();
        params
            .labels
            .iter()
            .flatten()
            .filter(|l| !labels.is_empty() && !labels.contains(l))
            .map(|l| {
                self.error(key("labels"), format!("`{l}` is not a label of classifier `{name}`"))
            })
            .collect()
    }

    /// The canonical classes a camera's models detect (after their class maps); empty when a
    /// model's class list cannot be read (reported on its own).
    fn provided_classes(&self, camera: &CameraConfig) -> Vec<String> {
        let mut provided = Vec::new();
        for model in camera.models.iter().filter_map(|m| self.model(m)) {
            match model.canonical_class_names() {
                Ok(names) => provided.extend(names),
                Err(_) => return Vec::new(),
            }
        }
        if camera.plates == PlateScope::Frame {
            provided.push(PlateScope::PLATE_CLASS.to_string());
        }
        provided
    }
}

/// The drone-specific mistakes of camera `i`: its kind, telemetry and zones agreeing.
fn validate_drone(config: &Config, i: usize, camera: &CameraConfig) -> Vec<ConfigError> {
    let key = |k: &str| format!("cameras[{i}].{k}");
    let mut errors = Vec::new();
    let mut check = |ok: bool, k: String, message: &str| {
        if !ok {
            errors.push(config.error(k, message));
        }
    };
    let drone = camera.kind == CameraKind::Drone;
    for (j, zone) in camera.zones.iter().enumerate() {
        let zkey = |k: &str| key(&format!("zones[{j}].{k}"));
        let (image, geo) = (!zone.polygon.points().is_empty(), zone.geo_polygon.is_some());
        check(image || geo, zkey("polygon"), "a zone needs a polygon or a geo_polygon");
        check(
            !(image && geo),
            zkey("geo_polygon"),
            "a zone has a polygon or a geo_polygon, not both",
        );
        check(
            !geo || drone,
            zkey("geo_polygon"),
            "geo-fences are for drone cameras: set kind = \"drone\" and its telemetry",
        );
        check(
            !(image && drone),
            zkey("polygon"),
            "a drone's camera moves, so image zones mean nothing: use \
             geo_polygon = [[lat, lon], …]",
        );
    }
    check(
        camera.dedup_radius_m.is_none_or(|r| r.is_finite() && r > 0.0),
        key("dedup_radius_m"),
        "must be above 0 metres",
    );
    check(
        camera.dedup_radius_m.is_none() || drone,
        key("dedup_radius_m"),
        "dedup by place is for drone cameras (kind = \"drone\")",
    );
    let Some(t) = &camera.telemetry else {
        check(
            !drone,
            key("telemetry"),
            "a drone camera needs [cameras.telemetry]: source = \"klv\" or \"mqtt\"",
        );
        return errors;
    };
    let tkey = |k: &str| key(&format!("telemetry.{k}"));
    check(drone, tkey("source"), "telemetry is for drone cameras: set kind = \"drone\"");
    check(
        t.max_age_s.is_finite() && t.max_age_s > 0.0,
        tkey("max_age_s"),
        "must be above 0 seconds",
    );
    for (name, fov) in [("hfov_deg", t.hfov_deg), ("vfov_deg", t.vfov_deg)] {
        check(
            fov.is_none_or(|f| f > 0.0 && f < 180.0),
            tkey(name),
            "must be above 0 and below 180 degrees",
        );
    }
    for (name, sigma) in [
        ("angle_sigma_deg", t.angle_sigma_deg),
        ("altitude_sigma_m", t.altitude_sigma_m),
        ("position_sigma_m", t.position_sigma_m),
    ] {
        check(sigma.is_finite() && sigma >= 0.0, tkey(name), "must be zero or more");
    }
    match t.source {
        TelemetrySource::Klv => {
            let template = pipeline_description(camera, true).unwrap_or_default();
            check(
                template.contains("name=klv"),
                tkey("source"),
                "KLV telemetry needs a pipeline with an element named `klv` on the stream's \
                 meta/x-klv pad, as the built-in udp-ts and srt-ts templates have",
            );
            for name in ["topic", "broker"] {
                let set = if name == "topic" { t.topic.is_some() } else { t.broker.is_some() };
                check(!set, tkey(name), "is for source = \"mqtt\"");
            }
            check(t.fields.is_empty(), tkey("fields"), "is for source = \"mqtt\"");
        }
        TelemetrySource::Mqtt => {
            let topic_ok =
                t.topic.as_deref().is_some_and(|s| !s.is_empty() && !s.contains(['+', '#']));
            check(
                topic_ok,
                tkey("topic"),
                "MQTT telemetry needs the topic its JSON arrives on (no wildcards)",
            );
            for (name, pointer) in &t.fields {
                if !FIELDS.contains(&name.as_str()) {
                    errors.push(config.error(
                        tkey(&format!("fields.{name}")),
                        format!("unknown telemetry field; fields are {}", FIELDS.join(", ")),
                    ));
                } else if !pointer.starts_with('/') {
                    errors.push(config.error(
                        tkey(&format!("fields.{name}")),
                        format!(
                            "`{pointer}` is not a JSON pointer; write it like \"/data/latitude\""
                        ),
                    ));
                }
            }
            for name in REQUIRED_FIELDS.iter().filter(|n| !t.fields.contains_key(**n)) {
                errors.push(config.error(
                    tkey(&format!("fields.{name}")),
                    "missing: the JSON pointer to this value in the telemetry message",
                ));
            }
            if !t.fields.contains_key("hfov") && t.hfov_deg.is_none() {
                errors.push(config.error(
                    tkey("hfov_deg"),
                    "needed when the telemetry has no hfov field: the camera's horizontal field \
                     of view",
                ));
            }
        }
    }
    errors
}

/// `(key path, name)` for each name that repeats an earlier one.
fn duplicates<'a>(
    names: impl Iterator<Item = &'a str>,
    list: &str,
    field: &str,
) -> Vec<(String, &'a str)> {
    let mut seen = HashSet::new();
    names
        .enumerate()
        .filter(|(_, name)| !seen.insert(*name))
        .map(|(i, name)| (format!("{list}[{i}].{field}"), name))
        .collect()
}

/// The longest id: ids become MQTT topic levels and file names, and an MQTT packet's topic and
/// a path both have limits (an id of 70,000 characters made every packet malformed).
const MAX_ID_CHARS: usize = 64;

/// What is wrong with an id (node, camera, topic prefix), if anything. Ids become MQTT topic
/// levels and folder names, so they keep to a plain alphabet, and `.` and `..` (folders already)
/// are refused: a camera `..` would write its clips outside the clips folder.
fn id_problem(id: &str) -> Option<String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || !id.chars().all(plain) {
        let shown: String = id.chars().take(MAX_ID_CHARS).collect();
        return Some(format!(
            "`{shown}` cannot be an MQTT topic level: use ASCII letters, digits, `-`, `_` or `.`"
        ));
    }
    if id.len() > MAX_ID_CHARS {
        return Some(format!("is {} characters long; the most is {MAX_ID_CHARS}", id.len()));
    }
    (id == "." || id == "..").then(|| format!("`{id}` names a folder: use a name with letters"))
}

/// What is wrong with a file the config names (`what`: "model file", "video file"…), if
/// anything: missing, or a folder where a file belongs.
fn file_problem(path: &Path, what: &str) -> Option<String> {
    if path.is_file() {
        None
    } else if path.is_dir() {
        Some(format!("{} is a folder, not a {what}", path.display()))
    } else {
        Some(format!("{what} not found: {}", path.display()))
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}
