//! The loop every controller and the scheduler run: a `Reconciler` re-syncs from the [`Store`] whenever
//! something it watches changes (level-triggered, like the real informer-driven controllers) or when a
//! timer it asked for fires. With it, what they and the kubelet share: the `Context`, and the
//! [`ControllerControl`] that pauses them and streams the notable transitions they report.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::logs::LogBook;
use crate::options::ClusterOptions;
use crate::pod_util::PodReadiness;
use crate::recorder::Recorder;
use crate::store::{ResourceType, Store, StoredEvent};

/// A controller with nothing to wait for still re-syncs this often (simulated time), like an
/// informer resync, so that a missed change cannot wedge it.
const IDLE_RESYNC: Duration = Duration::from_secs(30);

/// A notable moment in the simulated cluster, stamped when it happened, for benchmarks that measure
/// how long a client took to notice.
#[derive(Clone, Debug)]
pub struct Transition {
    pub at: std::time::Instant,
    pub kind: TransitionKind,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransitionKind {
    /// A pod's Ready condition became True.
    PodReady,
    /// A pod's Ready condition went from True to False.
    PodNotReady,
    /// A container of the pod entered `CrashLoopBackOff`.
    CrashLoopBackOff { container: String },
    /// A container of the pod entered `ImagePullBackOff` or `ErrImageNeverPull`.
    ImagePullFailing { container: String },
    /// A Deployment, StatefulSet or DaemonSet has all replicas updated and available.
    RolloutComplete { kind: &'static str },
    /// A Deployment's Progressing condition became `ProgressDeadlineExceeded`.
    ProgressDeadlineExceeded,
    /// A Job got its terminal condition.
    JobFinished { succeeded: bool },
}

/// Handle on the controllers of one cluster: pause/resume (admin endpoint) and the stream of
/// decisive transitions.
#[derive(Clone)]
pub struct ControllerControl {
    paused: watch::Sender<bool>,
    transitions: broadcast::Sender<Transition>,
    last: Arc<Mutex<Option<Transition>>>,
}

impl Default for ControllerControl {
    fn default() -> Self {
        Self::new()
    }
}

impl ControllerControl {
    pub fn new() -> Self {
        Self {
            paused: watch::Sender::new(false),
            transitions: broadcast::channel(1024).0,
            last: Arc::default(),
        }
    }

    /// Stops the workload controllers and the scheduler after their current sync; the kubelet keeps
    /// running pods that are already bound.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// Transitions from now on (a slow subscriber loses the oldest ones).
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.transitions.subscribe()
    }

    /// The most recent transition of any kind.
    pub fn last_transition(&self) -> Option<Transition> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn notify(&self, kind: TransitionKind, namespace: &str, name: &str) {
        let transition = Transition {
            at: std::time::Instant::now(),
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(transition.clone());
        // Nobody listening is fine: benchmarks subscribe only when they measure.
        let _ = self.transitions.send(transition);
    }

    /// Waits while paused; false when the cluster is stopping.
    async fn wait_until_running(&self, cancel: &CancellationToken) -> bool {
        let mut paused = self.paused.subscribe();
        tokio::select! {
            _ = cancel.cancelled() => false,
            result = paused.wait_for(|paused| !paused) => result.is_ok(),
        }
    }
}

/// What every controller and the kubelet share.
#[derive(Clone)]
pub(crate) struct Context {
    pub store: Store,
    pub logs: LogBook,
    pub options: ClusterOptions,
    pub control: ControllerControl,
    pub recorder: Recorder,
    pub readiness: PodReadiness,
}

impl Context {
    pub fn scaled(&self, simulated: Duration) -> Duration {
        self.options.scaled(simulated)
    }
}

/// One level-triggered reconciler: `sync` looks at the whole store and returns when it wants to run
/// again at the latest (minReadySeconds, deadlines, back-off).
pub(crate) trait Reconciler: Send + 'static {
    fn sync(&mut self, context: &Context) -> Option<Duration>;

    /// Sees every change of a watched resource before the sync it triggers.
    fn observe(&mut self, _context: &Context, _change: &StoredEvent) {}
}

pub(crate) fn spawn_controller(
    tasks: &TaskTracker,
    cancel: &CancellationToken,
    context: &Context,
    watched: &[ResourceType],
    mut reconciler: impl Reconciler,
) {
    let context = context.clone();
    let cancel = cancel.clone();
    let watched = watched.to_vec();
    let mut changes = context.store.subscribe();
    tasks.spawn(async move {
        let idle = context.scaled(IDLE_RESYNC);
        while context.control.wait_until_running(&cancel).await {
            let wake_after = reconciler
                .sync(&context)
                .map_or(idle, |after| after.min(idle));
            let wake = tokio::time::sleep(wake_after);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = &mut wake => break,
                    change = changes.recv() => match change {
                        Ok(change) if watched.contains(&change.resource) => {
                            reconciler.observe(&context, &change);
                            break;
                        }
                        Ok(_) => {}
                        // Changes were lost: a full resync covers them.
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => {
                            cancel.cancelled().await;
                            return;
                        }
                    },
                }
            }
            // Everything already queued is covered by the coming sync.
            while let Ok(change) = changes.try_recv() {
                if watched.contains(&change.resource) {
                    reconciler.observe(&context, &change);
                }
            }
        }
    });
}
