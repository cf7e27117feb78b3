//! The cluster side of tracking: shared watches, log streams and the `track()` driver.
//!
//! One kube-rs watch per (namespace, kind) in use, plus Pods and Events, shared by every resource of a
//! deploy and by concurrent deploys of one process through a [`WatchHub`] (reference counted: the watch
//! stops when its last subscriber goes). A watch lists once, then follows from the last resourceVersion;
//! a deploy joining a running watch starts from what it holds, which may lag behind the cluster (a
//! watch retrying after errors): `track()` therefore reads each tracked resource once itself (a
//! quorum GET after helm returned) and the core never lets a resource's view go back to an older
//! generation or another uid, so that joining costs no LIST (LISTs stay O(namespaces × kinds)).
//! A dropped watch resumes from there, a `410 Gone` re-lists, whether it comes as an `ERROR` event or
//! as the HTTP status of the watch request (objects missing from the new list are reported deleted),
//! and errors of our own API calls (5xx, 429, connection drops) are retried with
//! exponential back-off and reported as [`Observation::ApiError`], never as a verdict (DESIGN §5.3).

mod backoff;
pub mod deltas;
pub mod logs;
pub mod track;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, TypeMeta};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiResource, Scope};
use kube::runtime::utils::{Backoff as _, StreamBackoff};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::telemetry::{ApiCall, WatchMetrics, WatchRestart};

pub use backoff::WatchBackoff;
pub use logs::LogLimits;
pub use track::{
    Deadlines, TrackError, TrackOptions, TrackOutcome, TrackReport, Tracking, hold_watches, track,
};

/// Observations buffered per subscriber; a slower subscriber slows its watch rather than losing state.
const SUBSCRIBER_BUFFER: usize = 256;

/// One shared watch: a kind in a namespace (`None` for cluster-scoped kinds).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WatchKey {
    pub namespace: Option<String>,
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl WatchKey {
    pub fn new(namespace: Option<&str>, gvk: &GroupVersionKind) -> Self {
        WatchKey {
            namespace: namespace.map(str::to_owned),
            group: gvk.group.clone(),
            version: gvk.version.clone(),
            kind: gvk.kind.clone(),
        }
    }
}

impl std::fmt::Display for WatchKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let api_version = if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        };
        match &self.namespace {
            Some(namespace) => write!(f, "{api_version} {} in {namespace}", self.kind),
            None => write!(f, "{api_version} {}", self.kind),
        }
    }
}

/// What a watch saw.
#[derive(Debug, Clone)]
pub enum Observation {
    /// Listed, added or modified.
    Applied(Arc<DynamicObject>),
    Deleted(Arc<DynamicObject>),
    /// The watch has read a complete list: everything before this is the state of the cluster as
    /// listed (sent after the first list, or at once for a watch that had listed before, and after
    /// every re-list).
    Listed,
    /// One of our own API calls failed; the watch retries with back-off. Never a verdict.
    ApiError {
        watch: WatchKey,
        message: String,
    },
}

/// How the hub's watches behave.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// First retry delay after an API error, and between re-lists forced by a `410 Gone` watch
    /// status; doubles up to `max_backoff`, reset by any success (for re-lists: a change received).
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Server-side timeout of one watch request; the watch then resumes from its resourceVersion
    /// (no LIST).
    pub watch_timeout: Duration,
    /// Counts open watches, their restarts and failed API calls.
    pub metrics: Arc<WatchMetrics>,
    /// How long a watch outlives its last subscriber: deploys that come in bursts then share it
    /// rather than each listing again. Zero: it stops with its last subscriber.
    pub linger: Duration,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(15),
            watch_timeout: Duration::from_secs(290),
            metrics: Arc::default(),
            linger: Duration::ZERO,
        }
    }
}

/// Errors resolving a kind to the API resource serving it.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("invalid apiVersion {api_version:?}: {source}")]
    ApiVersion {
        api_version: String,
        source: kube::core::gvk::ParseGroupVersionError,
    },
    #[error("cannot discover {api_version} {kind}: {source}")]
    Api {
        api_version: String,
        kind: String,
        source: kube::Error,
    },
}

/// The watches of one cluster, shared by all deploys tracking in it.
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    client: Client,
    options: HubOptions,
    watches: Mutex<HashMap<WatchKey, Weak<SharedWatch>>>,
    discovered: Mutex<HashMap<GroupVersionKind, (ApiResource, Scope)>>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl WatchHub {
    pub fn new(client: Client, options: HubOptions) -> Self {
        WatchHub {
            inner: Arc::new(HubInner {
                client,
                options,
                watches: Mutex::new(HashMap::new()),
                discovered: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Watches currently running (each shared by all its subscribers).
    pub fn active_watches(&self) -> usize {
        let watches = self
            .inner
            .watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        watches
            .values()
            .filter(|watch| watch.strong_count() > 0)
            .count()
    }

    /// Stops every watch and waits for their tasks.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// The API resource serving `apiVersion`/`kind`, and whether it is namespaced. Built-in kinds
    /// need no request; others are discovered once per hub.
    pub async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, Scope), DiscoveryError> {
        let gvk = parse_gvk(api_version, kind)?;
        if let Some(known) = built_in(&gvk) {
            return Ok(known);
        }
        if let Some(found) = self.discovered().get(&gvk) {
            return Ok(found.clone());
        }
        let (resource, capabilities) = kube::discovery::pinned_kind(&self.inner.client, &gvk)
            .await
            .map_err(|source| DiscoveryError::Api {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                source,
            })?;
        let found = (resource, capabilities.scope);
        self.discovered().insert(gvk, found.clone());
        Ok(found)
    }

    fn discovered(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<GroupVersionKind, (ApiResource, Scope)>> {
        self.inner
            .discovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribes to the watch of `resource` in `namespace`, starting it if nobody watches it yet.
    pub fn subscribe(&self, namespace: Option<&str>, resource: &ApiResource) -> Subscription {
        let watch = self.use_watch(namespace, resource);
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        let (initial, listed) = {
            let mut state = watch.state().lock().unwrap_or_else(PoisonError::into_inner);
            state.subscribers.push(sender);
            (state.objects.values().cloned().collect(), state.listed)
        };
        Subscription {
            initial,
            listed,
            receiver,
            _watch: watch,
        }
    }

    /// Keeps the watch of `resource` in `namespace` running (starting it if nobody watches it
    /// yet) while the hold lives, without receiving from it: a deploy holds the watches its
    /// tracking will need while helm runs, so that they have listed by then.
    pub fn hold(&self, namespace: Option<&str>, resource: &ApiResource) -> WatchHold {
        WatchHold(self.use_watch(namespace, resource))
    }

    fn use_watch(&self, namespace: Option<&str>, resource: &ApiResource) -> WatchUse {
        let gvk = GroupVersionKind::gvk(&resource.group, &resource.version, &resource.kind);
        let key = WatchKey::new(namespace, &gvk);
        let mut watches = self
            .inner
            .watches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        watches.retain(|_, watch| watch.strong_count() > 0);
        let watch = match watches.get(&key).and_then(Weak::upgrade) {
            Some(watch) => watch,
            None => {
                let watch = self.start(key.clone(), resource.clone());
                watches.insert(key, Arc::downgrade(&watch));
                watch
            }
        };
        WatchUse {
            watch: Some(watch),
            hub: Arc::clone(&self.inner),
        }
    }

    fn start(&self, key: WatchKey, resource: ApiResource) -> Arc<SharedWatch> {
        let stop = self.inner.shutdown.child_token();
        let state = Arc::new(Mutex::new(WatchState::new(&resource)));
        let api: Api<DynamicObject> = match &key.namespace {
            Some(namespace) => {
                Api::namespaced_with(self.inner.client.clone(), namespace, &resource)
            }
            None => Api::all_with(self.inner.client.clone(), &resource),
        };
        let timeout = u32::try_from(self.inner.options.watch_timeout.as_secs()).unwrap_or(290);
        let source = WatchSource {
            key: key.clone(),
            api,
            config: watcher::Config::default().timeout(timeout),
            options: self.inner.options.clone(),
        };
        self.inner
            .tasks
            .spawn(run_watch(source, Arc::clone(&state), stop.clone()));
        Arc::new(SharedWatch { key, state, stop })
    }
}

/// A use of a shared watch; when it ends, the watch lives on for the hub's linger.
struct WatchUse {
    watch: Option<Arc<SharedWatch>>,
    hub: Arc<HubInner>,
}

impl WatchUse {
    fn state(&self) -> &Mutex<WatchState> {
        &self.watch.as_ref().expect("held until dropped").state
    }
}

impl Drop for WatchUse {
    fn drop(&mut self) {
        let (Some(watch), linger) = (self.watch.take(), self.hub.options.linger) else {
            return;
        };
        if linger.is_zero() || self.hub.shutdown.is_cancelled() {
            return;
        }
        let shutdown = self.hub.shutdown.clone();
        self.hub.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(linger) => {}
                () = shutdown.cancelled() => {}
            }
            drop(watch);
        });
    }
}

/// Keeps a watch running without receiving from it (see [`WatchHub::hold`]).
pub struct WatchHold(#[expect(dead_code, reason = "held for its drop, never read")] WatchUse);

/// What a subscriber receives: the objects the watch knows now, then every change after them.
pub struct Subscription {
    pub initial: Vec<Arc<DynamicObject>>,
    /// `initial` is a complete list (the watch has listed before this subscriber came).
    pub listed: bool,
    pub receiver: mpsc::Receiver<Observation>,
    _watch: WatchUse,
}

impl Subscription {
    /// The initial objects as `Applied` (then `Listed` if they are a complete list), then the live
    /// changes; the watch lives as long as the stream.
    pub fn into_stream(self) -> impl futures::Stream<Item = Observation> + Send + 'static {
        let Subscription {
            initial,
            listed,
            receiver,
            _watch: watch,
        } = self;
        let live = tokio_stream::wrappers::ReceiverStream::new(receiver).map(move |observation| {
            let _shared = &watch;
            observation
        });
        let snapshot = initial
            .into_iter()
            .map(Observation::Applied)
            .chain(listed.then_some(Observation::Listed));
        futures::stream::iter(snapshot).chain(live)
    }
}

struct SharedWatch {
    key: WatchKey,
    state: Arc<Mutex<WatchState>>,
    stop: CancellationToken,
}

impl Drop for SharedWatch {
    fn drop(&mut self) {
        tracing::debug!(watch = %self.key, "last use gone, stopping watch");
        self.stop.cancel();
    }
}

struct WatchState {
    /// List items come without apiVersion and kind: filled in from the watched resource.
    types: TypeMeta,
    /// By uid: what a new subscriber starts from.
    objects: HashMap<String, Arc<DynamicObject>>,
    subscribers: Vec<mpsc::Sender<Observation>>,
    /// Uids listed since the last (re-)list began; `None` outside a list.
    relisting: Option<HashSet<String>>,
    /// A list has completed: `objects` is a complete picture for a new subscriber.
    listed: bool,
}

impl WatchState {
    fn new(resource: &ApiResource) -> Self {
        WatchState {
            types: TypeMeta {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            },
            objects: HashMap::new(),
            subscribers: Vec::new(),
            relisting: None,
            listed: false,
        }
    }

    fn typed(&self, mut object: DynamicObject) -> Arc<DynamicObject> {
        if object.types.is_none() {
            object.types = Some(self.types.clone());
        }
        Arc::new(object)
    }

    /// Applies one watcher event to the state; returns what subscribers must be told, in order.
    fn apply(&mut self, event: watcher::Event<DynamicObject>) -> Vec<Observation> {
        match event {
            watcher::Event::Init => {
                self.relisting = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if let Some(listed) = self.relisting.as_mut() {
                    listed.insert(uid(&object));
                }
                vec![self.upsert(object)]
            }
            watcher::Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                let gone: Vec<String> = self
                    .objects
                    .keys()
                    .filter(|known| !listed.contains(*known))
                    .cloned()
                    .collect();
                self.listed = true;
                gone.into_iter()
                    .filter_map(|uid| self.objects.remove(&uid))
                    .map(Observation::Deleted)
                    .chain([Observation::Listed])
                    .collect()
            }
            watcher::Event::Apply(object) => vec![self.upsert(object)],
            watcher::Event::Delete(object) => {
                self.objects.remove(&uid(&object));
                vec![Observation::Deleted(self.typed(object))]
            }
        }
    }

    fn upsert(&mut self, object: DynamicObject) -> Observation {
        let object = self.typed(object);
        self.objects.insert(uid(&object), Arc::clone(&object));
        Observation::Applied(object)
    }

    /// The live subscribers, forgetting those that went away.
    fn subscribers(&mut self) -> Vec<mpsc::Sender<Observation>> {
        self.subscribers.retain(|sender| !sender.is_closed());
        self.subscribers.clone()
    }
}

fn uid(object: &DynamicObject) -> String {
    object.uid().unwrap_or_else(|| {
        format!(
            "{}/{}",
            object.namespace().unwrap_or_default(),
            object.name_any()
        )
    })
}

/// What a watch task needs to (re)start its watcher.
struct WatchSource {
    key: WatchKey,
    api: Api<DynamicObject>,
    config: watcher::Config,
    options: HubOptions,
}

impl WatchSource {
    /// A watcher from scratch (list, then watch), its errors retried with back-off.
    fn watcher(
        &self,
    ) -> impl futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send + use<>
    {
        let backoff = WatchBackoff::new(self.options.initial_backoff, self.options.max_backoff);
        StreamBackoff::new(watcher(self.api.clone(), self.config.clone()), backoff)
    }
}

/// A watch request answered `410 Gone` as its HTTP status (the apiserver's watch cache no longer holds
/// the resourceVersion). kube-runtime re-lists only for a 410 `ERROR` event inside the stream; for this
/// one it would retry the same resourceVersion forever.
fn is_expired_watch_start(error: &watcher::Error) -> bool {
    matches!(error, watcher::Error::WatchStartFailed(kube::Error::Api(status)) if status.code == 410)
}

async fn run_watch(source: WatchSource, state: Arc<Mutex<WatchState>>, stop: CancellationToken) {
    let key = &source.key;
    let metrics = &source.options.metrics;
    let _open = metrics.watch_opened();
    // Every list after the first is a restart: a 410 Gone, or a watch that kube-runtime re-listed.
    let mut listed_before = false;
    // Between re-lists forced by a 410; reset once the new watch delivers a change.
    let mut relist_backoff =
        WatchBackoff::new(source.options.initial_backoff, source.options.max_backoff);
    loop {
        let mut stream = std::pin::pin!(source.watcher());
        let relist_after = loop {
            let next = tokio::select! {
                () = stop.cancelled() => None,
                next = stream.next() => next,
            };
            let Some(next) = next else {
                end_subscriptions(&state);
                return;
            };
            let expired = next.as_ref().is_err_and(is_expired_watch_start);
            if matches!(next, Ok(watcher::Event::Init)) {
                if listed_before {
                    metrics.restarted(WatchRestart::Relist);
                }
                listed_before = true;
            }
            if matches!(
                next,
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))
            ) {
                relist_backoff.reset();
            }
            // State and the subscriber list are read under one lock, so that a subscriber joining now
            // gets each change exactly once: in its initial snapshot or through its channel.
            let (observations, subscribers) = {
                let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                let observations = match next {
                    Ok(event) => state.apply(event),
                    Err(error) => {
                        tracing::warn!(watch = %key, %error, "watch error, retrying with back-off");
                        metrics.api_error(failed_call(&error));
                        metrics.restarted(WatchRestart::Error);
                        vec![Observation::ApiError {
                            watch: key.clone(),
                            message: error.to_string(),
                        }]
                    }
                };
                (observations, state.subscribers())
            };
            for observation in observations {
                for subscriber in &subscribers {
                    // A closed subscriber is dropped from the list on the next change.
                    let _closed = subscriber.send(observation.clone()).await;
                }
            }
            if expired {
                break relist_backoff.next().unwrap_or(source.options.max_backoff);
            }
        };
        tracing::info!(watch = %key, delay = ?relist_after, "watch expired (410), re-listing");
        tokio::select! {
            () = stop.cancelled() => {
                end_subscriptions(&state);
                return;
            }
            () = tokio::time::sleep(relist_after) => {}
        }
    }
}

/// Which call a watcher error comes from: its initial list, or the watch that follows it.
fn failed_call(error: &watcher::Error) -> ApiCall {
    match error {
        watcher::Error::InitialListFailed(_) => ApiCall::List,
        _ => ApiCall::Watch,
    }
}

/// Subscribers' streams end with the watch (hub shutdown).
fn end_subscriptions(state: &Mutex<WatchState>) {
    state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .subscribers
        .clear();
}

fn parse_gvk(api_version: &str, kind: &str) -> Result<GroupVersionKind, DiscoveryError> {
    let group_version: kube::core::GroupVersion =
        api_version
            .parse()
            .map_err(|source| DiscoveryError::ApiVersion {
                api_version: api_version.to_owned(),
                source,
            })?;
    Ok(group_version.with_kind(kind))
}

/// Kinds every deploy watches (pods, events, the controllers' own objects), known without discovery.
fn built_in(gvk: &GroupVersionKind) -> Option<(ApiResource, Scope)> {
    use k8s_openapi::api::apps::v1::{
        ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
    };
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{
        ConfigMap, Event, PersistentVolumeClaim, Pod, Secret, Service, ServiceAccount,
    };

    let resource = [
        api_resource::<Pod>(),
        api_resource::<Event>(),
        api_resource::<Deployment>(),
        api_resource::<StatefulSet>(),
        api_resource::<DaemonSet>(),
        api_resource::<ReplicaSet>(),
        api_resource::<ControllerRevision>(),
        api_resource::<Job>(),
        api_resource::<Service>(),
        api_resource::<ConfigMap>(),
        api_resource::<Secret>(),
        api_resource::<ServiceAccount>(),
        api_resource::<PersistentVolumeClaim>(),
    ]
    .into_iter()
    .find(|resource| {
        resource.group == gvk.group && resource.version == gvk.version && resource.kind == gvk.kind
    })?;
    Some((resource, Scope::Namespaced))
}

/// The API resource of a typed k8s-openapi kind.
pub fn api_resource<K: kube::Resource<DynamicType = ()>>() -> ApiResource {
    ApiResource::erase::<K>(&())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(uid: &str, name: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "prod", "uid": uid, "resourceVersion": "1"},
        }))
        .expect("valid object")
    }

    fn names(observations: &[Observation]) -> Vec<String> {
        observations
            .iter()
            .map(|observation| match observation {
                Observation::Applied(object) => format!("applied {}", object.name_any()),
                Observation::Deleted(object) => format!("deleted {}", object.name_any()),
                Observation::Listed => "listed".to_owned(),
                Observation::ApiError { .. } => "error".to_owned(),
            })
            .collect()
    }

    fn fresh_state() -> WatchState {
        WatchState::new(&api_resource::<k8s_openapi::api::core::v1::ConfigMap>())
    }

    #[test]
    fn list_items_get_their_kind_from_the_watched_resource() {
        let mut untyped = object("a", "web");
        untyped.types = None;
        let observed = fresh_state().apply(watcher::Event::InitApply(untyped));
        let Some(Observation::Applied(object)) = observed.first() else {
            panic!("expected an applied object, got {observed:?}");
        };
        assert_eq!(
            object.types.as_ref().map(|t| t.kind.as_str()),
            Some("ConfigMap")
        );
    }

    #[test]
    fn relist_reports_objects_that_vanished_while_the_watch_was_gone() {
        let mut state = fresh_state();
        state.apply(watcher::Event::Init);
        state.apply(watcher::Event::InitApply(object("a", "kept")));
        state.apply(watcher::Event::InitApply(object("b", "removed")));
        assert_eq!(names(&state.apply(watcher::Event::InitDone)), ["listed"]);

        state.apply(watcher::Event::Init);
        let relisted = state.apply(watcher::Event::InitApply(object("a", "kept")));
        let done = state.apply(watcher::Event::InitDone);

        assert_eq!(names(&relisted), ["applied kept"]);
        assert_eq!(names(&done), ["deleted removed", "listed"]);
        assert_eq!(state.objects.len(), 1);
    }

    #[test]
    fn only_a_gone_watch_start_forces_a_relist() {
        let api = |code| {
            kube::Error::Api(
                kube::core::Status::failure("too old resource version", "Expired")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(is_expired_watch_start(&watcher::Error::WatchStartFailed(
            api(410)
        )));
        assert!(!is_expired_watch_start(&watcher::Error::WatchStartFailed(
            api(500)
        )));
        assert!(!is_expired_watch_start(&watcher::Error::InitialListFailed(
            api(410)
        )));
    }

    #[test]
    fn deletions_leave_the_snapshot() {
        let mut state = fresh_state();
        state.apply(watcher::Event::Apply(object("a", "web")));
        let deleted = state.apply(watcher::Event::Delete(object("a", "web")));
        assert_eq!(names(&deleted), ["deleted web"]);
        assert!(state.objects.is_empty());
    }

    #[test]
    fn built_in_kinds_resolve_without_discovery_and_others_do_not() {
        let deployment = built_in(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
        assert_eq!(
            deployment.map(|(resource, _)| resource.plural).as_deref(),
            Some("deployments")
        );
        assert!(built_in(&GroupVersionKind::gvk("example.com", "v1", "Widget")).is_none());
        assert!(built_in(&GroupVersionKind::gvk("apps", "v1beta1", "Deployment")).is_none());
    }

    #[test]
    fn watch_keys_read_as_kind_and_namespace() {
        let key = WatchKey::new(
            Some("prod"),
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
        );
        assert_eq!(key.to_string(), "apps/v1 Deployment in prod");
    }
}
