//! The Kubernetes HTTP API of the simulated cluster (JSON responses; JSON, YAML and protobuf requests),
//! and beside it the simulator's own `/sim/...` endpoints.

mod defaults;
pub mod discovery;
pub mod error;
mod patch;
mod pod_logs;
mod protobuf;
pub mod resources;
mod selectors;
mod sim;
mod table;
mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::control_loop::ControllerControl;
use crate::logs::LogBook;
use crate::options::KubeVersion;
use crate::store::{self, DeleteOptions, Propagation, ResourceType, Store, StoreError};
use error::ApiError;
use patch::PatchType;
use resources::ResourceInfo;
use selectors::{FieldSelector, LabelSelector};

/// Everything a request handler needs; cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub logs: LogBook,
    pub kube_version: KubeVersion,
    pub admin: Admin,
    pub controllers: ControllerControl,
    /// Cancelled when the cluster stops: ends streaming responses (watches, followed logs).
    pub shutdown: CancellationToken,
    /// The configuration each field manager last applied, by object uid (server-side apply).
    applied: Arc<Mutex<HashMap<(String, String), Value>>>,
}

impl ApiState {
    pub fn new(
        store: Store,
        logs: LogBook,
        kube_version: KubeVersion,
        admin: Admin,
        controllers: ControllerControl,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            logs,
            kube_version,
            admin,
            controllers,
            shutdown,
            applied: Arc::default(),
        }
    }

    fn last_applied(&self, uid: &str, manager: &str) -> Option<Value> {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(uid.to_owned(), manager.to_owned()))
            .cloned()
    }

    fn remember_applied(&self, uid: &str, manager: &str, applied: Value) {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((uid.to_owned(), manager.to_owned()), applied);
    }
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/api", get(core_versions))
        .route("/apis", get(api_groups))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*path}", get(openapi_document))
        .route("/healthz", get(healthy))
        .route("/livez", get(healthy))
        .route("/readyz", get(healthy))
        .fallback(resource_request)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_and_inject_faults,
        ))
        .nest("/sim", sim::router())
        .with_state(state)
}

async fn count_and_inject_faults(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let agent = user_agent(request.headers());
    state.admin.count(request.method(), request.uri(), agent);
    let latency = state.admin.latency(agent);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path(), |target| target.as_str());
    if let Some(status) = state.admin.take_failure(target, agent) {
        return ApiError::Injected(status).into_response();
    }
    next.run(request).await
}

/// The request's `User-Agent` (empty when absent): faults may be scoped to one client.
fn user_agent(headers: &HeaderMap) -> &str {
    headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

async fn healthy() -> &'static str {
    "ok"
}

async fn version(State(state): State<ApiState>) -> Json<Value> {
    Json(discovery::version(state.kube_version))
}

async fn core_versions(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("127.0.0.1");
    Json(discovery::core_versions(host))
}

async fn api_groups(State(state): State<ApiState>) -> Json<Value> {
    Json(discovery::groups(&state.store))
}

async fn openapi_root(State(state): State<ApiState>) -> Json<Value> {
    Json(discovery::openapi_root(&state.store))
}

async fn openapi_document(
    State(state): State<ApiState>,
    Path(path): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let segments: Vec<&str> = path.split('/').collect();
    let (group, version) = match segments.as_slice() {
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => return Err(ApiError::UnknownResource),
    };
    discovery::openapi_group_version(&state.store, group, version)
        .map(Json)
        .ok_or(ApiError::UnknownResource)
}

/// A request for a resource, parsed from its path.
struct Target {
    info: ResourceInfo,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    legacy_watch: bool,
}

impl Target {
    fn rt(&self) -> &ResourceType {
        &self.info.rt
    }

    fn name(&self) -> Result<&str, ApiError> {
        self.name.as_deref().ok_or(ApiError::MethodNotAllowed)
    }
}

enum Parsed {
    GroupVersion { group: String, version: String },
    Resource(Box<Target>),
}

fn parse_path(store: &Store, path: &str) -> Result<Parsed, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::UnknownResource),
    };
    if rest.is_empty() {
        return Ok(Parsed::GroupVersion {
            group: group.to_owned(),
            version: version.to_owned(),
        });
    }
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let owned = |s: Option<&&str>| s.map(|s| (*s).to_owned());
    let (namespace, resource, name, subresource) = match rest {
        ["namespaces", name, sub @ ("status" | "finalize")] => {
            (None, "namespaces", Some(name), Some(sub))
        }
        ["namespaces", namespace, resource, rest @ ..] if rest.len() <= 2 => {
            (Some(*namespace), *resource, rest.first(), rest.get(1))
        }
        [resource, rest @ ..] if rest.len() <= 2 => (None, *resource, rest.first(), rest.get(1)),
        _ => return Err(ApiError::UnknownResource),
    };
    let info =
        resources::resolve(store, group, version, resource).ok_or(ApiError::UnknownResource)?;
    if namespace.is_some() && !info.rt.namespaced {
        return Err(ApiError::UnknownResource);
    }
    let subresource = owned(subresource);
    if let Some(sub) = &subresource
        && !info.has_subresource(sub)
    {
        return Err(ApiError::UnknownResource);
    }
    Ok(Parsed::Resource(Box::new(Target {
        info,
        namespace: namespace.map(|ns| (*ns).to_owned()),
        name: owned(name),
        subresource,
        legacy_watch,
    })))
}

type Params = HashMap<String, String>;

fn flag(params: &Params, key: &str) -> bool {
    params
        .get(key)
        .is_some_and(|value| value == "true" || value == "1")
}

fn dry_run(params: &Params) -> bool {
    params.get("dryRun").is_some_and(|value| value == "All")
}

async fn resource_request(
    State(state): State<ApiState>,
    method: Method,
    uri: Uri,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match serve(&state, &method, &uri, &params, &headers, &body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve(
    state: &ApiState,
    method: &Method,
    uri: &Uri,
    params: &Params,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let target = match parse_path(&state.store, uri.path())? {
        Parsed::GroupVersion { group, version } => {
            if method != Method::GET {
                return Err(ApiError::MethodNotAllowed);
            }
            return discovery::resource_list(&state.store, &group, &version)
                .map(|list| Json(list).into_response())
                .ok_or(ApiError::UnknownResource);
        }
        Parsed::Resource(target) => target,
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json");
    let subresource = target.subresource.as_deref();
    match (method.clone(), target.name.is_some(), subresource) {
        (Method::GET, _, None) if target.legacy_watch => {
            watch::serve(state, &target, params, headers)
        }
        (Method::GET, false, _) if flag(params, "watch") => {
            watch::serve(state, &target, params, headers)
        }
        (Method::GET, false, _) => list(state, &target, params, table_format(headers, params)),
        (Method::GET, true, Some("log")) => pod_logs::serve(state, &target, params).await,
        (Method::GET, true, Some("scale")) => {
            Ok(Json(scale_of(&get_object(state, &target)?)).into_response())
        }
        (Method::GET, true, _) => {
            let object = get_object(state, &target)?;
            Ok(Json(match table_format(headers, params) {
                Some(format) => format.table(target.rt(), &[object], state.store.revision()),
                None => object,
            })
            .into_response())
        }
        (Method::POST, false, None) => {
            create(state, &target, params, decode_body(content_type, body)?)
        }
        (Method::PUT, true, _) => update(state, &target, params, decode_body(content_type, body)?),
        (Method::PATCH, true, _) => {
            let patch_type = PatchType::from_content_type(content_type)
                .ok_or_else(|| ApiError::UnsupportedMediaType(format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json; got {content_type}")))?;
            patch_object(
                state,
                &target,
                params,
                patch_type,
                decode_body(content_type, body)?,
            )
        }
        (Method::DELETE, true, None) => delete(state, &target, params, content_type, body),
        (Method::DELETE, false, None) => delete_collection(state, &target, params),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// JSON, YAML (apply bodies) or Kubernetes protobuf.
fn decode_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        return protobuf::decode(body);
    }
    if body.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_slice(body) {
        Ok(value) => Ok(value),
        Err(_) if content_type.contains("yaml") => serde_yaml_ng::from_slice(body)
            .map_err(|error| ApiError::BadRequest(format!("error decoding YAML: {error}"))),
        Err(error) => Err(ApiError::BadRequest(format!(
            "error decoding request body: {error}"
        ))),
    }
}

fn get_object(state: &ApiState, target: &Target) -> Result<Value, ApiError> {
    let name = target.name()?;
    state
        .store
        .get(target.rt(), target.namespace.as_deref(), name)
        .ok_or_else(|| not_found(target.rt(), name))
}

fn not_found(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::Store(StoreError::NotFound {
        resource: *rt,
        name: name.to_owned(),
    })
}

pub(crate) struct Selectors {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Selectors {
    fn parse(rt: &ResourceType, params: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            labels: LabelSelector::parse(
                params
                    .get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )?,
            fields: FieldSelector::parse(
                params
                    .get("fieldSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
                rt,
            )?,
        })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.labels.matches(object) && self.fields.matches(object)
    }
}

fn list_response(rt: &ResourceType, items: Vec<Value>, revision: u64) -> Value {
    json!({
        "kind": rt.list_kind(),
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    })
}

/// How a `kubectl get` wants its answer: a Table, with whole objects or their metadata in the rows.
#[derive(Clone, Copy)]
pub(crate) struct TableFormat {
    include_object: bool,
}

impl TableFormat {
    pub(crate) fn table(
        self,
        rt: &ResourceType,
        objects: &[Value],
        resource_version: u64,
    ) -> Value {
        table::table(rt, objects, resource_version, self.include_object)
    }
}

fn table_format(headers: &HeaderMap, params: &Params) -> Option<TableFormat> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    table::wanted(accept).then(|| TableFormat {
        include_object: params
            .get("includeObject")
            .is_some_and(|include| include == "Object"),
    })
}

fn list(
    state: &ApiState,
    target: &Target,
    params: &Params,
    format: Option<TableFormat>,
) -> Result<Response, ApiError> {
    let selectors = Selectors::parse(target.rt(), params)?;
    let (items, revision) = state.store.list(target.rt(), target.namespace.as_deref());
    let items: Vec<Value> = items
        .iter()
        .filter(|item| selectors.matches(item))
        .map(|item| Value::clone(item))
        .collect();
    Ok(Json(match format {
        Some(format) => format.table(target.rt(), &items, revision),
        None => list_response(target.rt(), items, revision),
    })
    .into_response())
}

/// The object as the request addresses it: namespace from the URL, kind checked.
fn prepare(target: &Target, mut object: Value) -> Result<Value, ApiError> {
    if !object.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    if let Some(kind) = object.get("kind").and_then(Value::as_str)
        && kind != target.rt().kind
    {
        return Err(ApiError::BadRequest(format!(
            "the kind {kind:?} of the body does not match the resource {} (kind {:?})",
            target.rt().group_resource(),
            target.rt().kind
        )));
    }
    if let Some(namespace) = &target.namespace {
        let body_namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        if body_namespace.is_some_and(|ns| !ns.is_empty() && ns != namespace) {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ));
        }
        if object.get("metadata").is_none_or(|m| !m.is_object()) {
            object["metadata"] = json!({});
        }
        object["metadata"]["namespace"] = namespace.clone().into();
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    Ok(object)
}

/// Status the apiserver fills in on create for kinds no controller of ours owns.
fn initial_status(rt: &ResourceType, object: &mut Value) {
    if *rt == store::NAMESPACES && object.pointer("/status/phase").is_none() {
        object["status"] = json!({"phase": "Active"});
    }
}

/// A CRD is accepted at once: its names become served and it reports Established.
fn establish_crd(state: &ApiState, crd: &Value) -> Result<Value, ApiError> {
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let stored_versions: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|version| {
            version
                .get("storage")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .filter_map(|version| version.get("name").cloned())
        .collect();
    let now = store::timestamp(chrono::Utc::now());
    Ok(state.store.modify(&store::CRDS, None, name, |crd| {
        crd["status"] = json!({
            "acceptedNames": names,
            "storedVersions": stored_versions,
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        });
    })?)
}

fn create(
    state: &ApiState,
    target: &Target,
    params: &Params,
    body: Value,
) -> Result<Response, ApiError> {
    let mut object = prepare(target, body)?;
    initial_status(target.rt(), &mut object);
    defaults::apply(target.rt(), &mut object);
    if dry_run(params) {
        return Ok((StatusCode::CREATED, Json(object)).into_response());
    }
    let mut created = state.store.create(target.rt(), object)?;
    if *target.rt() == store::CRDS {
        created = establish_crd(state, &created)?;
    }
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

fn check_name(target: &Target, object: &Value) -> Result<(), ApiError> {
    let name = target.name()?;
    match object.pointer("/metadata/name").and_then(Value::as_str) {
        Some(body_name) if body_name != name => Err(ApiError::BadRequest(
            "the name of the object does not match the name on the URL".into(),
        )),
        _ => Ok(()),
    }
}

fn write(
    state: &ApiState,
    target: &Target,
    mut object: Value,
    dry: bool,
) -> Result<Value, ApiError> {
    if target.subresource.is_none() {
        defaults::apply(target.rt(), &mut object);
    }
    if dry {
        return Ok(object);
    }
    let written = match target.subresource.as_deref() {
        Some("status") => state.store.update_status(target.rt(), object)?,
        _ => state.store.update(target.rt(), object)?,
    };
    if *target.rt() == store::CRDS && target.subresource.is_none() {
        return establish_crd(state, &written);
    }
    Ok(written)
}

fn update(
    state: &ApiState,
    target: &Target,
    params: &Params,
    body: Value,
) -> Result<Response, ApiError> {
    if target.subresource.as_deref() == Some("scale") {
        let replicas = body
            .pointer("/spec/replicas")
            .cloned()
            .unwrap_or(Value::Null);
        return set_scale(state, target, replicas);
    }
    let mut object = prepare(target, body)?;
    check_name(target, &object)?;
    object["metadata"]["name"] = target.name()?.into();
    let written = write(state, target, object, dry_run(params))?;
    Ok(Json(written).into_response())
}

/// The autoscaling/v1 Scale view of a workload.
fn scale_of(object: &Value) -> Value {
    let metadata = &object["metadata"];
    let selector = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata["name"], "namespace": metadata["namespace"], "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"], "creationTimestamp": metadata["creationTimestamp"],
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {"replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
    })
}

fn set_scale(state: &ApiState, target: &Target, replicas: Value) -> Result<Response, ApiError> {
    let name = target.name()?;
    if replicas.as_i64().is_none_or(|r| r < 0) {
        return Err(ApiError::Store(StoreError::Invalid {
            resource: *target.rt(),
            name: name.to_owned(),
            cause: store::FieldCause::new(
                "spec.replicas",
                format!("Invalid value: {replicas}: must be greater than or equal to 0"),
            ),
        }));
    }
    let written = state
        .store
        .modify(target.rt(), target.namespace.as_deref(), name, |object| {
            object["spec"]["replicas"] = replicas;
        })?;
    Ok(Json(scale_of(&written)).into_response())
}

/// Patches retry on a concurrent write like the apiserver's GuaranteedUpdate, unless the patch itself
/// names a resourceVersion.
const PATCH_ATTEMPTS: usize = 5;

fn patch_object(
    state: &ApiState,
    target: &Target,
    params: &Params,
    patch_type: PatchType,
    patch: Value,
) -> Result<Response, ApiError> {
    let name = target.name()?;
    if patch_type == PatchType::StrategicMerge && !target.info.builtin {
        return Err(ApiError::UnsupportedMediaType(
            "strategic merge patch is not supported for custom resources; use a merge patch".into(),
        ));
    }
    if target.subresource.as_deref() == Some("scale") {
        let current = get_object(state, target)?;
        let mut scale = scale_of(&current);
        apply_patch_of_type(&mut scale, &patch, patch_type, true)?;
        return set_scale(
            state,
            target,
            scale
                .pointer("/spec/replicas")
                .cloned()
                .unwrap_or(Value::Null),
        );
    }
    let manager = params.get("fieldManager").cloned().unwrap_or_default();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Some(current) = state
            .store
            .get(target.rt(), target.namespace.as_deref(), name)
        else {
            if patch_type != PatchType::Apply || target.subresource.is_some() {
                return Err(not_found(target.rt(), name));
            }
            let applied = prepare(target, patch)?;
            check_name(target, &applied)?;
            let response = create(state, target, params, applied.clone())?;
            if let Some(uid) = state
                .store
                .get(target.rt(), target.namespace.as_deref(), name)
                .and_then(|created| {
                    created
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
            {
                state.remember_applied(&uid, &manager, applied);
            }
            return Ok(response);
        };
        let mut next = current.clone();
        let applied = if patch_type == PatchType::Apply {
            let applied = prepare(target, patch.clone())?;
            check_name(target, &applied)?;
            let uid = current
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let last = state.last_applied(uid, &manager);
            let three_way = patch::apply_patch(last.as_ref(), &applied, target.info.builtin);
            apply_patch_of_type(
                &mut next,
                &three_way,
                PatchType::StrategicMerge,
                target.info.builtin,
            )?;
            Some((uid.to_owned(), applied))
        } else {
            apply_patch_of_type(&mut next, &patch, patch_type, target.info.builtin)?;
            None
        };
        let explicit_version = patch.pointer("/metadata/resourceVersion").is_some();
        if !explicit_version && let Some(rv) = current.pointer("/metadata/resourceVersion") {
            next["metadata"]["resourceVersion"] = rv.clone();
        }
        match write(state, target, next, dry_run(params)) {
            Ok(written) => {
                if let Some((uid, applied)) = applied
                    && !dry_run(params)
                {
                    state.remember_applied(&uid, &manager, applied);
                }
                return Ok(Json(written).into_response());
            }
            Err(ApiError::Store(StoreError::Conflict { .. }))
                if !explicit_version && attempts < PATCH_ATTEMPTS => {}
            Err(error) => return Err(error),
        }
    }
}

fn apply_patch_of_type(
    target: &mut Value,
    patch: &Value,
    patch_type: PatchType,
    builtin: bool,
) -> Result<(), ApiError> {
    match patch_type {
        PatchType::Json => patch::json_patch(target, patch),
        PatchType::Merge => {
            patch::merge_patch(target, patch);
            Ok(())
        }
        PatchType::StrategicMerge | PatchType::Apply if builtin => {
            patch::strategic_merge_patch(target, patch)
        }
        PatchType::StrategicMerge | PatchType::Apply => {
            patch::merge_patch(target, patch);
            Ok(())
        }
    }
}

fn delete_options(
    params: &Params,
    content_type: &str,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let body = decode_body(content_type, body)?;
    let text = |key: &str| {
        params
            .get(key)
            .cloned()
            .or_else(|| body.get(key).and_then(Value::as_str).map(str::to_owned))
    };
    let grace_period_seconds =
        match params.get("gracePeriodSeconds") {
            Some(grace) => Some(grace.parse::<i64>().map_err(|_| {
                ApiError::BadRequest(format!("invalid gracePeriodSeconds {grace:?}"))
            })?),
            None => body.get("gracePeriodSeconds").and_then(Value::as_i64),
        };
    let orphan = params
        .get("orphanDependents")
        .map(|value| value == "true")
        .or_else(|| body.get("orphanDependents").and_then(Value::as_bool));
    let propagation = match text("propagationPolicy").as_deref() {
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid propagationPolicy {other:?}"
            )));
        }
        None => match orphan {
            Some(true) => Some(Propagation::Orphan),
            Some(false) => Some(Propagation::Background),
            None => None,
        },
    };
    let precondition = |field: &str| {
        body.pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    Ok(DeleteOptions {
        grace_period_seconds,
        precondition_uid: precondition("uid"),
        precondition_resource_version: precondition("resourceVersion"),
        propagation,
    })
}

fn delete(
    state: &ApiState,
    target: &Target,
    params: &Params,
    content_type: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let name = target.name()?;
    let options = delete_options(params, content_type, body)?;
    if dry_run(params) {
        return Ok(Json(get_object(state, target)?).into_response());
    }
    let deleted = state
        .store
        .delete(target.rt(), target.namespace.as_deref(), name, options)?;
    // 202 when the object only started terminating (the apiserver's wasDeleted=false).
    let status = if deleted.removed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(deleted.object)).into_response())
}

fn delete_collection(
    state: &ApiState,
    target: &Target,
    params: &Params,
) -> Result<Response, ApiError> {
    let selectors = Selectors::parse(target.rt(), params)?;
    let options = delete_options(params, "application/json", &[])?;
    let (items, _) = state.store.list(target.rt(), target.namespace.as_deref());
    let mut deleted = Vec::new();
    for item in items.iter().filter(|item| selectors.matches(item)) {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespace = item.pointer("/metadata/namespace").and_then(Value::as_str);
        match state
            .store
            .delete(target.rt(), namespace, name, options.clone())
        {
            Ok(gone) => deleted.push(gone.object),
            // Garbage collection of an earlier item may have removed this one already.
            Err(StoreError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Json(list_response(target.rt(), deleted, state.store.revision())).into_response())
}
