//! Container logs of the simulated pods: written by the kubelet, read by `pods/log`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

/// Lines kept per container instance; older ones are dropped like a rotated log file.
const LINES_PER_INSTANCE: usize = 10_000;
const BROADCAST_CAPACITY: usize = 4_096;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub text: String,
    /// The container instance that wrote the line (the pod's `restartCount` at the time).
    pub restart_count: u32,
}

/// Which container a line belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContainerRef {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

impl ContainerRef {
    pub fn new(namespace: &str, pod: &str, container: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            container: container.to_owned(),
        }
    }
}

#[derive(Default)]
struct Book {
    /// Per container, per instance (restart count), the most recent lines.
    lines: HashMap<ContainerRef, HashMap<u32, VecDeque<LogLine>>>,
}

/// The log store of the cluster; cheap to clone.
#[derive(Clone)]
pub struct LogBook {
    book: Arc<Mutex<Book>>,
    appended: broadcast::Sender<(ContainerRef, LogLine)>,
}

impl Default for LogBook {
    fn default() -> Self {
        Self::new()
    }
}

impl LogBook {
    pub fn new() -> Self {
        Self {
            book: Arc::default(),
            appended: broadcast::channel(BROADCAST_CAPACITY).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One line written by `container` of pod (namespace, pod) during its instance `restart_count`.
    pub fn append(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        restart_count: u32,
        text: &str,
    ) {
        let line = LogLine {
            at: Utc::now(),
            text: text.to_owned(),
            restart_count,
        };
        let container = ContainerRef::new(namespace, pod, container);
        let mut book = self.lock();
        let instance = book
            .lines
            .entry(container.clone())
            .or_default()
            .entry(restart_count)
            .or_default();
        if instance.len() == LINES_PER_INSTANCE {
            instance.pop_front();
        }
        instance.push_back(line.clone());
        // Sent under the lock so followers see lines in the order they were stored.
        let _ = self.appended.send((container, line));
    }

    /// The lines of one container instance (`restart_count`), oldest first.
    pub fn lines(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        restart_count: u32,
    ) -> Vec<LogLine> {
        self.lock()
            .lines
            .get(&ContainerRef::new(namespace, pod, container))
            .and_then(|instances| instances.get(&restart_count))
            .map(|lines| lines.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The lines of one instance and a subscription to every line appended after them (for `follow`).
    pub fn lines_and_subscribe(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        restart_count: u32,
    ) -> (Vec<LogLine>, broadcast::Receiver<(ContainerRef, LogLine)>) {
        let book = self.lock();
        let lines = book
            .lines
            .get(&ContainerRef::new(namespace, pod, container))
            .and_then(|instances| instances.get(&restart_count))
            .map(|lines| lines.iter().cloned().collect())
            .unwrap_or_default();
        (lines, self.appended.subscribe())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<(ContainerRef, LogLine)> {
        self.appended.subscribe()
    }

    /// Drops the logs of a removed pod, so that a new pod with the same name (StatefulSet) starts empty.
    pub fn forget_pod(&self, namespace: &str, pod: &str) {
        self.lock()
            .lines
            .retain(|container, _| !(container.namespace == namespace && container.pod == pod));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_per_container_instance() {
        let logs = LogBook::new();
        logs.append("default", "web-0", "app", 0, "first run");
        logs.append("default", "web-0", "app", 1, "second run");
        logs.append("default", "web-0", "sidecar", 1, "other container");
        let texts = |restart: u32| -> Vec<String> {
            logs.lines("default", "web-0", "app", restart)
                .into_iter()
                .map(|line| line.text)
                .collect()
        };
        assert_eq!(texts(0), ["first run"]);
        assert_eq!(texts(1), ["second run"]);
        assert!(logs.lines("default", "web-1", "app", 0).is_empty());
    }

    #[test]
    fn followers_receive_appended_lines_and_forgotten_pods_start_empty() {
        let logs = LogBook::new();
        logs.append("default", "web-0", "app", 0, "before");
        let (lines, mut follow) = logs.lines_and_subscribe("default", "web-0", "app", 0);
        assert_eq!(lines.len(), 1);
        logs.append("default", "web-0", "app", 0, "after");
        let (container, line) = follow.try_recv().unwrap();
        assert_eq!(container, ContainerRef::new("default", "web-0", "app"));
        assert_eq!(line.text, "after");

        logs.forget_pod("default", "web-0");
        assert!(logs.lines("default", "web-0", "app", 0).is_empty());
    }
}
