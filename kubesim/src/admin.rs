//! Fault injection and request counters: test-controlled, outside the Kubernetes API. The API server
//! consults and counts into them on every request; the cluster handle and the `/sim/...` endpoints
//! (`api::sim`) drive them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::{Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::store::{DeleteOptions, PODS, Store, StoreError};

#[derive(Clone, Debug)]
struct InjectedFailures {
    remaining: u32,
    status: StatusCode,
    path_contains: Option<String>,
}

#[derive(Default)]
struct AdminState {
    failures: Option<InjectedFailures>,
    latency: Duration,
    /// Faults reach only requests whose `User-Agent` contains this (`None`: every request).
    user_agent_scope: Option<String>,
    /// By (client, verb, resource).
    counts: BTreeMap<(String, String, String), u64>,
    previous_logs: u64,
    /// Cancelled to end every open watch; replaced by a fresh token right after.
    watches: CancellationToken,
}

/// Faults and counters shared by the HTTP server and the cluster handle; cheap to clone.
#[derive(Clone, Default)]
pub struct Admin {
    state: Arc<Mutex<AdminState>>,
}

/// Requests served, by verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
/// `deletecollection`) and by resource (`deployments.apps`, `pods/log`, or the path of a non-resource
/// request such as `/version`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RequestCounts {
    pub total: u64,
    pub by_verb: BTreeMap<String, u64>,
    pub by_resource: BTreeMap<String, BTreeMap<String, u64>>,
    /// `pods/log` requests for the previous container instance (`previous=true`, `kubectl logs -p`),
    /// also counted in `by_resource`.
    #[serde(default)]
    pub previous_logs: u64,
    /// `by_resource` per client: the product of its `User-Agent` (`rollcall`, `Helm`, `kubectl`;
    /// empty without one), so that one client's cost can be told from another's.
    #[serde(default)]
    pub by_client: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
}

impl RequestCounts {
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.by_resource
            .get(resource)
            .and_then(|verbs| verbs.get(verb))
            .copied()
            .unwrap_or(0)
    }

    /// Requests of one client (see `by_client`) by verb and resource.
    pub fn client_count(&self, client: &str, verb: &str, resource: &str) -> u64 {
        self.by_client
            .get(client)
            .and_then(|resources| resources.get(resource))
            .and_then(|verbs| verbs.get(verb))
            .copied()
            .unwrap_or(0)
    }

    /// Requests of one client with `verb`, whatever the resource.
    pub fn client_verb(&self, client: &str, verb: &str) -> u64 {
        self.by_client
            .get(client)
            .into_iter()
            .flat_map(BTreeMap::values)
            .filter_map(|verbs| verbs.get(verb))
            .sum()
    }
}

impl AdminState {
    fn faults_reach(&self, user_agent: &str) -> bool {
        self.user_agent_scope
            .as_deref()
            .is_none_or(|scope| user_agent.contains(scope))
    }
}

impl Admin {
    fn lock(&self) -> MutexGuard<'_, AdminState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `count` API requests (whose path and query contain `path_contains`, if given: e.g.
    /// `watch=true` for watches) fail with `status` (e.g. 500, 429, or 410 `Expired` as the watch cache
    /// answers a resourceVersion it no longer holds) as a Kubernetes `Status`.
    pub fn fail_next(&self, count: u32, status: StatusCode, path_contains: Option<String>) {
        self.lock().failures = Some(InjectedFailures {
            remaining: count,
            status,
            path_contains,
        });
    }

    /// Every API request waits this long before it is served.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Limits every fault (injected failures, latency, dropped watches) to requests whose
    /// `User-Agent` contains `user_agent_contains` (`None`: every request), e.g. to fault one
    /// client's requests while helm's go through.
    pub fn scope_faults(&self, user_agent_contains: Option<String>) {
        self.lock().user_agent_scope = user_agent_contains;
    }

    /// Clears the faults and their scope.
    pub fn clear_faults(&self) {
        let mut state = self.lock();
        state.failures = None;
        state.latency = Duration::ZERO;
        state.user_agent_scope = None;
    }

    /// Ends every open watch; clients reconnect from their last resourceVersion.
    pub fn drop_watches(&self) {
        let mut state = self.lock();
        state.watches.cancel();
        state.watches = CancellationToken::new();
    }

    /// Cancelled when watches are dropped, for a watch by `user_agent` (one out of the faults'
    /// scope gets a token that never is).
    pub(crate) fn watch_token(&self, user_agent: &str) -> CancellationToken {
        let state = self.lock();
        if state.faults_reach(user_agent) {
            state.watches.clone()
        } else {
            CancellationToken::new()
        }
    }

    /// How long a request by `user_agent` waits before it is served.
    pub(crate) fn latency(&self, user_agent: &str) -> Duration {
        let state = self.lock();
        if state.faults_reach(user_agent) {
            state.latency
        } else {
            Duration::ZERO
        }
    }

    /// Consumes one injected failure if it applies to this request: its path (with its query) and
    /// `user_agent`.
    pub(crate) fn take_failure(&self, path: &str, user_agent: &str) -> Option<StatusCode> {
        let mut state = self.lock();
        if !state.faults_reach(user_agent) {
            return None;
        }
        let failures = state.failures.as_mut()?;
        if failures
            .path_contains
            .as_deref()
            .is_some_and(|needle| !path.contains(needle))
        {
            return None;
        }
        let status = failures.status;
        failures.remaining -= 1;
        if failures.remaining == 0 {
            state.failures = None;
        }
        Some(status)
    }

    /// Counts one API request by its client (`user_agent`), verb and resource.
    pub(crate) fn count(&self, method: &Method, uri: &Uri, user_agent: &str) {
        let (verb, resource) = classify(method, uri);
        let previous_log = resource == "pods/log" && query_flag(uri, "previous");
        let client = user_agent
            .split(['/', ' '])
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut state = self.lock();
        *state.counts.entry((client, verb, resource)).or_default() += 1;
        if previous_log {
            state.previous_logs += 1;
        }
    }

    pub fn request_counts(&self) -> RequestCounts {
        let state = self.lock();
        let mut counts = RequestCounts {
            previous_logs: state.previous_logs,
            ..RequestCounts::default()
        };
        for ((client, verb, resource), count) in &state.counts {
            *counts
                .by_client
                .entry(client.clone())
                .or_default()
                .entry(resource.clone())
                .or_default()
                .entry(verb.clone())
                .or_default() += count;
            counts.total += count;
            *counts.by_verb.entry(verb.clone()).or_default() += count;
            *counts
                .by_resource
                .entry(resource.clone())
                .or_default()
                .entry(verb.clone())
                .or_default() += count;
        }
        counts
    }

    pub fn reset_request_counts(&self) {
        let mut state = self.lock();
        state.counts.clear();
        state.previous_logs = 0;
    }
}

/// The verb and resource a request counts as, from its method and path alone.
pub(crate) fn classify(method: &Method, uri: &Uri) -> (String, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => Some(("", rest)),
        ["apis", group, _version, rest @ ..] => Some((*group, rest)),
        _ => None,
    };
    let Some((group, rest)) = rest.filter(|(_, rest)| !rest.is_empty()) else {
        return ("get".into(), uri.path().to_owned());
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    let (resource, name, subresource) = match rest {
        ["namespaces", _, sub @ ("status" | "finalize")] => ("namespaces", Some(()), Some(*sub)),
        ["namespaces", _, resource, rest @ ..] => {
            (*resource, rest.first().map(|_| ()), rest.get(1).copied())
        }
        [resource, rest @ ..] => (*resource, rest.first().map(|_| ()), rest.get(1).copied()),
        [] => unreachable!("filtered above"),
    };
    let watch = legacy_watch || query_flag(uri, "watch");
    let verb = match (method.as_str(), name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => return (other.to_lowercase(), uri.path().to_owned()),
    };
    let mut resource = if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    };
    if let Some(subresource) = subresource {
        resource = format!("{resource}/{subresource}");
    }
    (verb.into(), resource)
}

/// Whether the query sets the boolean parameter `name` (`true` or `1`).
fn query_flag(uri: &Uri, name: &str) -> bool {
    uri.query().is_some_and(|query| {
        query.split('&').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, value)| key == name && (value == "true" || value == "1"))
        })
    })
}

/// Removes a pod at once, as if its node vanished: no grace, no controller involvement.
pub(crate) fn delete_pod_behind_controllers(
    store: &Store,
    namespace: &str,
    name: &str,
) -> Result<serde_json::Value, StoreError> {
    store
        .delete(&PODS, Some(namespace), name, DeleteOptions::immediate())
        .map(|deleted| deleted.object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(method: Method, uri: &str) -> (String, String) {
        classify(&method, &uri.parse().unwrap())
    }

    #[test]
    fn requests_are_classified_by_verb_and_resource() {
        let c = |v: &str, r: &str| (v.to_owned(), r.to_owned());
        assert_eq!(
            classified(Method::GET, "/api/v1/namespaces/default/pods"),
            c("list", "pods")
        );
        assert_eq!(
            classified(
                Method::GET,
                "/apis/apps/v1/namespaces/default/deployments?watch=true&x=1"
            ),
            c("watch", "deployments.apps")
        );
        assert_eq!(
            classified(
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/web/status"
            ),
            c("patch", "deployments.apps/status")
        );
        assert_eq!(
            classified(Method::GET, "/api/v1/namespaces/d/pods/p/log"),
            c("get", "pods/log")
        );
        assert_eq!(
            classified(Method::DELETE, "/api/v1/namespaces/x"),
            c("delete", "namespaces")
        );
        assert_eq!(classified(Method::GET, "/version"), c("get", "/version"));
    }

    #[test]
    fn injected_failures_apply_to_matching_paths_and_run_out() {
        let admin = Admin::default();
        admin.fail_next(2, StatusCode::TOO_MANY_REQUESTS, Some("deployments".into()));
        assert_eq!(admin.take_failure("/api/v1/pods", ""), None);
        assert_eq!(
            admin.take_failure("/apis/apps/v1/deployments", ""),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(
            admin.take_failure("/apis/apps/v1/deployments", ""),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(admin.take_failure("/apis/apps/v1/deployments", ""), None);
        admin.fail_next(1, StatusCode::GONE, Some("watch=true".into()));
        assert_eq!(admin.take_failure("/api/v1/namespaces/d/pods", ""), None);
        assert_eq!(
            admin.take_failure("/api/v1/namespaces/d/pods?watch=true&resourceVersion=7", ""),
            Some(StatusCode::GONE)
        );
    }

    #[test]
    fn counts_aggregate_by_verb_and_resource() {
        let admin = Admin::default();
        let count = |uri: &str| admin.count(&Method::GET, &uri.parse().unwrap(), "rollcall/0.1.0");
        count("/api/v1/namespaces/d/pods/a");
        count("/api/v1/namespaces/d/pods/b");
        count("/api/v1/namespaces/d/pods");
        count("/api/v1/namespaces/d/pods/a/log?container=app&previous=true");
        count("/api/v1/namespaces/d/pods/a/log?container=app&previous=false");
        let counts = admin.request_counts();
        assert_eq!(counts.total, 5);
        assert_eq!(counts.by_verb["get"], 4);
        assert_eq!(counts.count("list", "pods"), 1);
        assert_eq!(counts.count("get", "pods/log"), 2);
        assert_eq!(counts.previous_logs, 1);
        assert_eq!(counts.client_count("rollcall", "list", "pods"), 1);
        assert_eq!(counts.client_verb("rollcall", "get"), 4);
        assert_eq!(counts.client_count("Helm", "list", "pods"), 0);
        admin.reset_request_counts();
        assert_eq!(admin.request_counts(), RequestCounts::default());
    }
}
