//! What the page changes on the node: verdicts on incidents, the suppressions they leave, and
//! the config's zones, lines and algorithm settings. Every handler here runs behind
//! [`auth::guard`]: signed in, and for a POST with the session's CSRF token.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth::{self, Auth, Role, Who, refuse};
use super::edit::{Change, EditRequest, FieldError};
use crate::verdict::{self, Store, Suppression};
use crate::wire::{Verdict, VerdictPayload};

const JSON: &str = "application/json";
/// A save waits this long at most for the node to check and apply the config (models may load).
const EDIT_TIMEOUT: Duration = Duration::from_secs(60);

/// The node's parts the page may change.
pub struct Operate {
    pub auth: Arc<Auth>,
    pub verdicts: Option<Arc<Store>>,
    /// To the config thread, which checks, writes and applies edits one at a time.
    pub editor: Option<Sender<EditRequest>>,
    pub config_path: Option<PathBuf>,
}

impl Operate {
    /// Nothing to change, sign-in off: the read-only page of a node without the parts.
    pub fn none() -> Operate {
        Operate {
            auth: Arc::new(Auth::new(None, Duration::from_secs(3600))),
            verdicts: None,
            editor: None,
            config_path: None,
        }
    }
}

fn ok_json(body: &impl Serialize) -> Response {
    let body = serde_json::to_string(body).expect("plain data serializes");
    (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictForm {
    camera: String,
    verdict: Verdict,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/incidents/{id}/verdict` with `{"camera", "verdict", "note"}`: the signed-in
/// user's verdict.
pub async fn give_verdict(
    State(operate): State<Arc<Operate>>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(store) = operate.verdicts.clone() else {
        return refuse(StatusCode::NOT_FOUND, "this node takes no verdicts");
    };
    let Ok(id) = Uuid::try_parse(&id).map(|id| id.to_string()) else {
        return refuse(StatusCode::NOT_FOUND, "not an incident id");
    };
    let Ok(form) = serde_json::from_slice::<VerdictForm>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "expected {\"camera\", \"verdict\", \"note\"}");
    };
    let verdict = VerdictPayload { verdict: form.verdict, by: who.name.clone(), note: form.note };
    let camera = form.camera;
    // Encoding the suppression's snapshot and writing files: off the async threads.
    let given = tokio::task::spawn_blocking(move || {
        verdict.check().and_then(|()| store.give(&camera, &id, &verdict, "web"))
    })
    .await;
    match given {
        Ok(Ok(given)) => ok_json(&serde_json::json!({
            "ends": given.ends,
            "suppression": given.suppression.map(|s| s.id),
        })),
        Ok(Err(why)) => refuse(StatusCode::CONFLICT, &why),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Serialize)]
struct SuppressionJson {
    #[serde(flatten)]
    suppression: Suppression,
    snapshot_url: Option<String>,
}

/// `GET /api/suppressions`: those in force, oldest first, and whether this user may remove
/// them.
pub async fn suppressions(
    State(operate): State<Arc<Operate>>,
    Extension(who): Extension<Who>,
) -> Response {
    let list = operate.verdicts.as_ref().map(|s| s.list()).unwrap_or_default();
    let list: Vec<SuppressionJson> = list
        .into_iter()
        .map(|s| SuppressionJson {
            snapshot_url: s.snapshot.then(|| format!("/suppressions/{}/snapshot.jpg", s.id)),
            suppression: s,
        })
        .collect();
    ok_json(&serde_json::json!({ "suppressions": list, "can_remove": who.role == Role::Installer }))
}

/// `GET /suppressions/{id}/snapshot.jpg`
pub async fn suppression_snapshot(
    State(operate): State<Arc<Operate>>,
    Path(id): Path<String>,
) -> Response {
    let (Some(store), Ok(id)) = (&operate.verdicts, Uuid::try_parse(&id)) else {
        return refuse(StatusCode::NOT_FOUND, "no such suppression");
    };
    // A snapshot and the config are small files: read in place.
    match std::fs::read(verdict::snapshot_path(store.data_dir(), &id.to_string())) {
        Ok(jpeg) => (StatusCode::OK, [(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        Err(_) => refuse(StatusCode::NOT_FOUND, "no snapshot for this suppression"),
    }
}

/// `POST /api/suppressions/{id}/remove`: installers only.
pub async fn remove_suppression(
    State(operate): State<Arc<Operate>>,
    Extension(who): Extension<Who>,
    Path(id): Path<String>,
) -> Response {
    if let Some(refused) = auth::unless_installer(&who) {
        return refused;
    }
    let (Some(store), Ok(id)) = (operate.verdicts.clone(), Uuid::try_parse(&id)) else {
        return refuse(StatusCode::NOT_FOUND, "no such suppression");
    };
    let removed =
        tokio::task::spawn_blocking(move || store.remove(&id.to_string(), &who.name)).await;
    match removed {
        Ok(Ok(s)) => ok_json(&serde_json::json!({ "removed": s.id })),
        Ok(Err(why)) => refuse(StatusCode::NOT_FOUND, &why),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `GET /api/config`: each camera's zones and algorithms as the config file writes them (each
/// setting as TOML text), for the editor. Camera URLs (which may hold passwords) stay out.
pub async fn config(
    State(operate): State<Arc<Operate>>,
    Extension(who): Extension<Who>,
) -> Response {
    let Some(path) = &operate.config_path else {
        return refuse(StatusCode::NOT_FOUND, "no config to edit");
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("cannot read the config: {e}"),
            );
        }
    };
    let Ok(doc) = text.parse::<toml_edit::DocumentMut>() else {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "the config file is not TOML now");
    };
    let cameras = doc.get("cameras").and_then(toml_edit::Item::as_array_of_tables);
    let cameras: Vec<serde_json::Value> = cameras
        .into_iter()
        .flat_map(|all| all.iter())
        .map(|camera| {
            let tables = |key: &str| -> Vec<serde_json::Value> {
                let item = camera.get(key);
                let fields = |pairs: Vec<(String, String)>| {
                    serde_json::Value::Object(
                        pairs.into_iter().map(|(k, v)| (k, v.into())).collect(),
                    )
                };
                match item {
                    Some(toml_edit::Item::ArrayOfTables(all)) => all
                        .iter()
                        .map(|t| {
                            fields(
                                t.iter()
                                    .map(|(k, v)| (k.to_string(), v.to_string().trim().to_string()))
                                    .collect(),
                            )
                        })
                        .collect(),
                    Some(toml_edit::Item::Value(toml_edit::Value::Array(all))) => all
                        .iter()
                        .filter_map(toml_edit::Value::as_inline_table)
                        .map(|t| {
                            fields(
                                t.iter()
                                    .map(|(k, v)| (k.to_string(), v.to_string().trim().to_string()))
                                    .collect(),
                            )
                        })
                        .collect(),
                    _ => Vec::new(),
                }
            };
            serde_json::json!({
                "id": camera.get("id").and_then(toml_edit::Item::as_str),
                "zones": tables("zones"),
                "algorithms": tables("algorithms"),
            })
        })
        .collect();
    ok_json(&serde_json::json!({ "cameras": cameras, "can_edit": who.role == Role::Installer }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditForm {
    camera: String,
    changes: Vec<Change>,
}

/// `POST /api/config/edit` with `{"camera", "changes": [...]}`: installers only. The node
/// checks the whole resulting file as a reload would; 422 with `{"errors": [{key, message}]}`
/// leaves the file as it was.
pub async fn edit(
    State(operate): State<Arc<Operate>>,
    Extension(who): Extension<Who>,
    body: Bytes,
) -> Response {
    if let Some(refused) = auth::unless_installer(&who) {
        return refused;
    }
    let Some(editor) = &operate.editor else {
        return refuse(StatusCode::NOT_FOUND, "no config to edit");
    };
    let form = match serde_json::from_slice::<EditForm>(&body) {
        Ok(form) => form,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("not an edit: {e}")),
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = EditRequest { camera: form.camera, changes: form.changes, by: who.name, reply };
    if editor.send(request).is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the node is stopping");
    }
    match tokio::time::timeout(EDIT_TIMEOUT, answer).await {
        Ok(Ok(Ok(sha256))) => ok_json(&serde_json::json!({ "sha256": sha256 })),
        Ok(Ok(Err(errors))) => errors_answer(&errors),
        _ => refuse(StatusCode::SERVICE_UNAVAILABLE, "the node did not answer in time"),
    }
}

fn errors_answer(errors: &[FieldError]) -> Response {
    let body = serde_json::json!({ "errors": errors }).to_string();
    (StatusCode::UNPROCESSABLE_ENTITY, [(header::CONTENT_TYPE, JSON)], body).into_response()
}
