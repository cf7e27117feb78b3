//! `rollcall explain` end to end: the built binary on saved objects.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const AT: &str = "2026-11-01T12:01:00Z";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/explain")
        .join(name)
}

fn rollcall(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .args(args)
        .output()
        .expect("run rollcall")
}

fn explain_json(file: &Path, extra: &[&str]) -> Vec<Value> {
    let path = file.to_str().expect("utf-8 path");
    let mut args = vec!["explain", "-f", path, "-o", "json", "--at", AT];
    args.extend_from_slice(extra);
    let output = rollcall(&args);
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("a JSON array")
}

fn find<'a>(verdicts: &'a [Value], kind: &str, name: &str) -> &'a Value {
    verdicts
        .iter()
        .find(|verdict| verdict["kind"] == kind && verdict["name"] == name)
        .unwrap_or_else(|| panic!("no verdict for {kind} {name} in {verdicts:#?}"))
}

#[test]
fn healthy_rollout_with_harmless_churn_has_no_incidents() {
    let verdicts = explain_json(&fixture("rollout.yaml"), &[]);
    let names: Vec<(&str, &str)> = verdicts
        .iter()
        .map(|v| (v["kind"].as_str().unwrap(), v["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("Deployment", "web"),
            ("StatefulSet", "jenkins"),
            ("Certificate", "shop-tls"),
            ("ConfigMap", "settings")
        ],
        "ReplicaSets, Pods and Events are material, not verdicts"
    );

    let web = find(&verdicts, "Deployment", "web");
    assert_eq!(web["apiVersion"], "apps/v1");
    assert_eq!(web["namespace"], "shop");
    assert_eq!(web["state"], "progressing");
    assert_eq!(
        web["message"],
        "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
    );
    assert_eq!(web["failures"], "0/2 allowed", "werf.io annotation applied");
    assert_eq!(web["incidents"], Value::Array(Vec::new()));
    assert_eq!(web["terminal"], false);

    let jenkins = find(&verdicts, "StatefulSet", "jenkins");
    assert_eq!(jenkins["state"], "ready");
    assert_eq!(
        jenkins["message"],
        "partitioned roll out complete: 1 new pods have been updated..."
    );
    assert_eq!(jenkins["incidents"], Value::Array(Vec::new()));

    assert_eq!(find(&verdicts, "Certificate", "shop-tls")["state"], "ready");
    assert_eq!(find(&verdicts, "ConfigMap", "settings")["state"], "ready");
}

#[test]
fn failures_are_terminal_with_their_incidents() {
    let verdicts = explain_json(&fixture("failures.yaml"), &[]);
    assert_eq!(verdicts.len(), 2);

    let api = find(&verdicts, "Deployment", "api");
    assert_eq!(api["state"], "failed");
    assert_eq!(api["terminal"], true);
    assert_eq!(
        api["message"],
        "deployment \"api\" exceeded its progress deadline"
    );
    let reasons: Vec<&str> = api["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|incident| incident["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["InvalidImageName", "FailedCreate"]);
    assert_eq!(api["incidents"][0]["pod"], "api-66b6c48dd5-7hx2p");
    assert_eq!(api["incidents"][0]["container"], "api");

    let migrate = find(&verdicts, "Job", "migrate");
    assert_eq!(migrate["state"], "failed");
    assert_eq!(migrate["terminal"], true);
    assert_eq!(migrate["failures"], "2/1 allowed");
}

#[test]
fn since_excludes_older_events() {
    let verdicts = explain_json(
        &fixture("failures.yaml"),
        &["--since", "2026-11-01T11:30:00Z"],
    );
    let api = find(&verdicts, "Deployment", "api");
    assert_eq!(api["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(api["incidents"][0]["reason"], "InvalidImageName");
}

#[test]
fn text_output_is_a_table() {
    let path = fixture("failures.yaml");
    let output = rollcall(&[
        "explain",
        "-f",
        path.to_str().unwrap(),
        "-o",
        "text",
        "--at",
        AT,
    ]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("RESOURCE"), "{text}");
    assert!(
        header.contains("STATE") && header.contains("FAILURES"),
        "{text}"
    );
    let api = lines.next().unwrap();
    assert!(api.starts_with("shop/Deployment/api"), "{text}");
    assert!(api.contains("failed"), "{text}");
    assert!(
        text.contains("api-66b6c48dd5-7hx2p InvalidImageName"),
        "{text}"
    );
}

#[test]
fn invalid_policy_annotation_names_resource_and_annotation() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  \
         annotations:\n    rollcall.dev/fail-mode: SometimesFail\nspec:\n  selector: {}\n  template: {}\n",
    )
    .unwrap();
    let output = rollcall(&["explain", "-f", file.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Deployment shop/web"), "{stderr}");
    assert!(stderr.contains("rollcall.dev/fail-mode"), "{stderr}");
}

#[test]
fn malformed_objects_are_reported_with_their_document() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\n\
         metadata: {name: web}\nspec: {replicas: many, selector: {}, template: {}}\n",
    )
    .unwrap();
    let output = rollcall(&["explain", "-f", file.path().to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("document 2"), "{stderr}");
    assert!(stderr.contains("Deployment web"), "{stderr}");
}

#[test]
fn config_rules_decide_custom_resources() {
    let widgets = fixture("widgets.yaml");
    let generic = explain_json(&widgets, &[]);
    assert_eq!(find(&generic, "Widget", "starting")["state"], "ready");
    assert_eq!(find(&generic, "Widget", "broken")["state"], "ready");

    let rules = fixture("widget-rules.toml");
    let ruled = explain_json(&widgets, &["--config", rules.to_str().unwrap()]);
    let starting = find(&ruled, "Widget", "starting");
    assert_eq!(starting["state"], "progressing", "{starting:#}");
    assert_eq!(
        starting["message"],
        "Waiting for widget \"starting\": Available=True..."
    );
    let broken = find(&ruled, "Widget", "broken");
    assert_eq!(broken["state"], "failed", "{broken:#}");
    assert_eq!(broken["terminal"], true);
    assert_eq!(
        broken["message"],
        "widget \"broken\" is Degraded=True: QuotaExceeded: no capacity left"
    );
}

#[test]
fn invalid_config_rules_name_the_entry_and_field() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        "[[tracking.custom_resources]]\ngroup = \"example.com\"\nkind = \"Widget\"\n\
         ready_when = [{condition = \"\", status = \"True\"}]\n",
    )
    .unwrap();
    let widgets = fixture("widgets.yaml");
    let output = rollcall(&[
        "explain",
        "-f",
        widgets.to_str().unwrap(),
        "--config",
        config.path().to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "tracking.custom_resources[0] (example.com/Widget): ready_when[0].condition: must name a condition type"
        ),
        "{stderr}"
    );
}

/// One object of an upstream corpus (`tests/fixtures/explain/<corpus>.yaml`, named after the upstream
/// case) and rollcall's verdict on it.
struct Case {
    kind: &'static str,
    name: &'static str,
    state: &'static str,
    message: &'static str,
    /// Where rollcall deliberately answers otherwise: what upstream says, and why rollcall does not.
    differs: Option<&'static str>,
}

/// A table of [`Case`]s, one per line: `Kind "name" => state "message";`, with
/// `unlike upstream: "why"` before the `;` where rollcall deliberately differs.
macro_rules! cases {
    (@differs) => { None };
    (@differs $why:expr) => { Some($why) };
    ($($kind:ident $name:literal => $state:ident $message:literal $(unlike upstream: $why:expr)?;)+) => {
        &[$(Case {
            kind: stringify!($kind),
            name: $name,
            state: stringify!($state),
            message: $message,
            differs: cases!(@differs $($why)?),
        }),+]
    };
}

/// Checks every case at once, so that a failure lists all disagreements.
fn assert_cases(verdicts: &[Value], cases: &[Case]) {
    let mismatches: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let verdict = find(verdicts, case.kind, case.name);
            let matches = verdict["state"] == case.state && verdict["message"] == case.message;
            (!matches).then(|| {
                format!(
                    "{} {}: expected {} {:?}{}, got {} {}",
                    case.kind,
                    case.name,
                    case.state,
                    case.message,
                    case.differs
                        .map(|why| format!(" (deliberately unlike upstream: {why})"))
                        .unwrap_or_default(),
                    verdict["state"],
                    verdict["message"]
                )
            })
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Every object of a corpus that gets a verdict is one of its cases, and the other way round.
fn assert_corpus_covered(verdicts: &[Value], groups: &[&[Case]]) {
    let mut listed: Vec<(&str, &str)> = groups
        .iter()
        .flat_map(|cases| cases.iter().map(|case| (case.kind, case.name)))
        .collect();
    let mut explained: Vec<(&str, &str)> = verdicts
        .iter()
        .map(|v| (v["kind"].as_str().unwrap(), v["name"].as_str().unwrap()))
        .collect();
    listed.sort_unstable();
    explained.sort_unstable();
    assert_eq!(listed, explained);
}

/// helm's legacy ReadyChecker (pkg/kube/ready.go, ready_test.go; `helm --wait` in helm 3,
/// `--wait=legacy` in helm 4). rollcall follows `kubectl rollout status`, stricter than helm.
mod helm_ready_checker {
    use std::sync::LazyLock;

    use super::*;

    static CORPUS: LazyLock<Vec<Value>> =
        LazyLock::new(|| explain_json(&fixture("helm-ready-checker.yaml"), &[]));

    const READ_COUNTERS_NOT_CONDITIONS: &str = "helm judges a Job by its succeeded and failed \
        counters; rollcall waits for the Job controller's own verdict, the Complete or Failed \
        condition (or their interim SuccessCriteriaMet / FailureTarget), as helm 4's default \
        watcher and kstatus do";

    const POD_READY: &[Case] = cases! {
        Pod "ready-condition-true" => ready "pod \"ready-condition-true\" is ready";
        Pod "succeeded" => ready "pod \"succeeded\" succeeded"
            unlike upstream: "helm waits for Ready=True, which a completed pod never gets again";
    };

    const JOB_READY: &[Case] = cases! {
        Job "completed" => progressing "Waiting for job \"completed\" to complete: 1 of 1 completions, 0 active, 0 failed..."
            unlike upstream: READ_COUNTERS_NOT_CONDITIONS;
        Job "incomplete" => progressing "Waiting for job \"incomplete\" to complete: 0 of 1 completions, 0 active, 0 failed...";
        Job "failed-within-backoff-limit" => progressing "Waiting for job \"failed-within-backoff-limit\" to complete: 0 of 1 completions, 0 active, 1 failed...";
        Job "completed-after-a-retry" => progressing "Waiting for job \"completed-after-a-retry\" to complete: 1 of 1 completions, 0 active, 1 failed..."
            unlike upstream: READ_COUNTERS_NOT_CONDITIONS;
        Job "failed-beyond-backoff-limit" => progressing "Waiting for job \"failed-beyond-backoff-limit\" to complete: 0 of 1 completions, 0 active, 2 failed..."
            unlike upstream: READ_COUNTERS_NOT_CONDITIONS;
        Job "completed-single-run" => progressing "Waiting for job \"completed-single-run\" to complete: 1 of 1 completions, 0 active, 0 failed..."
            unlike upstream: READ_COUNTERS_NOT_CONDITIONS;
        Job "failed-single-run" => progressing "Waiting for job \"failed-single-run\" to complete: 0 of 1 completions, 0 active, 1 failed..."
            unlike upstream: READ_COUNTERS_NOT_CONDITIONS;
        Job "completed-without-completions" => progressing "Waiting for job \"completed-without-completions\" to complete: 1 of 1 completions, 0 active, 0 failed..."
            unlike upstream: READ_COUNTERS_NOT_CONDITIONS;
    };

    const DEPLOYMENT_READY: &[Case] = cases! {
        Deployment "ready" => ready "deployment \"ready\" successfully rolled out";
        Deployment "not-ready" => progressing "Waiting for deployment \"not-ready\" rollout to finish: 0 out of 1 new replicas have been updated...";
        Deployment "max-unavailable" => progressing "Waiting for deployment \"max-unavailable\" rollout to finish: 1 of 2 updated replicas are available..."
            unlike upstream: "helm is satisfied with replicas - maxUnavailable ready pods of the new ReplicaSet; \
             kubectl rollout status waits for every updated replica to be available";
        Deployment "replica-set-generation-behind" => ready "deployment \"replica-set-generation-behind\" successfully rolled out"
            unlike upstream: "helm also waits for the new ReplicaSet's observedGeneration; kubectl reads the \
             Deployment's status, whose replica counts already cover a ReplicaSet change";
        Deployment "generation-behind" => progressing "Waiting for deployment spec update to be observed...";
        Deployment "paused" => ready "deployment \"paused\" is paused: no rollout to wait for";
    };

    const VOLUME_READY: &[Case] = cases! {
        PersistentVolumeClaim "bound" => ready "persistent volume claim \"bound\" is bound";
        PersistentVolumeClaim "pending" => progressing "Waiting for persistent volume claim \"pending\" to be bound (phase Pending)...";
        PersistentVolumeClaim "lost" => failed "persistent volume claim \"lost\" lost its volume"
            unlike upstream: "helm waits for Bound until its timeout; a Lost claim's volume is gone for good";
    };

    const SERVICE_READY: &[Case] = cases! {
        Service "external-name" => ready "service \"external-name\" is an ExternalName";
        Service "load-balancer-without-cluster-ip" => progressing "Waiting for service \"load-balancer-without-cluster-ip\" to get a cluster IP...";
        Service "load-balancer-with-external-ips" => ready "service \"load-balancer-with-external-ips\" is ready on its external IPs 192.0.2.10, 192.0.2.11: no load balancer ingress to wait for";
        Service "load-balancer-without-ingress" => progressing "Waiting for service \"load-balancer-without-ingress\" to get a load balancer ingress...";
        Service "cluster-ip" => ready "service \"cluster-ip\" is ready";
    };

    const DAEMON_SET_READY: &[Case] = cases! {
        DaemonSet "ready" => ready "daemon set \"ready\" successfully rolled out";
        DaemonSet "ready-without-number-available" => progressing "Waiting for daemon set \"ready-without-number-available\" rollout to finish: 0 of 1 updated pods are available..."
            unlike upstream: "helm counts numberReady; kubectl counts numberAvailable, absent here and so zero";
        DaemonSet "not-ready" => progressing "Waiting for daemon set \"not-ready\" rollout to finish: 0 of 1 updated pods are available...";
        DaemonSet "not-scheduled" => progressing "Waiting for daemon set \"not-scheduled\" rollout to finish: 0 out of 1 new pods have been updated...";
        DaemonSet "max-unavailable" => progressing "Waiting for daemon set \"max-unavailable\" rollout to finish: 1 of 2 updated pods are available..."
            unlike upstream: "helm is satisfied with desired - maxUnavailable ready pods; kubectl waits for all";
        DaemonSet "generation-behind" => progressing "Waiting for daemon set spec update to be observed...";
        DaemonSet "on-delete" => ready "daemon set \"on-delete\" uses the OnDelete strategy: pods change only when deleted";
    };

    const STATEFUL_SET_READY: &[Case] = cases! {
        StatefulSet "ready" => ready "partitioned roll out complete: 1 new pods have been updated...";
        StatefulSet "not-ready" => progressing "Waiting for 1 pods to be ready...";
        StatefulSet "partition-rolled-out" => ready "partitioned roll out complete: 1 new pods have been updated...";
        StatefulSet "partition-rolling-out" => progressing "Waiting for 1 pods to be ready...";
        StatefulSet "partition-template-unchanged" => ready "partitioned roll out complete: 2 new pods have been updated...";
        StatefulSet "partition-above-replicas" => ready "partitioned roll out complete: 1 new pods have been updated...";
        StatefulSet "generation-behind" => progressing "Waiting for statefulset spec update to be observed...";
        StatefulSet "partition-revisions-differ" => ready "partitioned roll out complete: 3 new pods have been updated...";
        StatefulSet "revisions-differ" => ready "partitioned roll out complete: 2 new pods have been updated..."
            unlike upstream: "helm also waits for currentRevision to reach updateRevision when the partition is 0; \
             kubectl is done once every pod is ready and updated (the controller promotes the \
             revision in the same status write)";
        StatefulSet "scaling-down" => ready "partitioned roll out complete: 3 new pods have been updated..."
            unlike upstream: "helm wants readyReplicas == replicas and so waits for surplus pods to go; kubectl \
             checks readyReplicas >= replicas";
        StatefulSet "on-delete" => ready "statefulset \"on-delete\" uses the OnDelete strategy: pods change only when deleted";
    };

    const REPLICA_SET_AND_CONTROLLER_READY: &[Case] = cases! {
        ReplicationController "generation-behind" => progressing "Waiting for replicationcontroller \"generation-behind\" spec update to be observed (generation 2, observed 1)...";
        ReplicationController "observed" => ready "replicationcontroller \"observed\" is present";
        ReplicaSet "ready" => ready "replica set \"ready\" has 1 available replicas";
        ReplicaSet "ready-without-available-replicas" => progressing "Waiting for replica set \"ready-without-available-replicas\": 0 of 1 replicas are available..."
            unlike upstream: "helm asks each selected pod for Ready; rollcall reads availableReplicas (which honours \
             minReadySeconds), absent here and so zero, as kstatus does";
        ReplicaSet "generation-behind" => progressing "Waiting for replica set spec update to be observed...";
        ReplicaSet "pod-not-ready" => ready "replica set \"pod-not-ready\" has 1 available replicas"
            unlike upstream: "helm lists the selected pods and finds one not Ready; rollcall reads the ReplicaSet's \
             own counts, as kstatus does";
    };

    const CRD_READY: &[Case] = cases! {
        CustomResourceDefinition "established.example.com" => ready "custom resource definition \"established.example.com\" is established";
        CustomResourceDefinition "not-established.example.com" => progressing "Waiting for custom resource definition \"not-established.example.com\" to be established...";
        CustomResourceDefinition "names-accepted.example.com" => progressing "Waiting for custom resource definition \"names-accepted.example.com\" to be established...";
        CustomResourceDefinition "names-not-accepted.example.com" => failed "custom resource definition \"names-not-accepted.example.com\" names are not accepted: NotAccepted"
            unlike upstream: "helm lets a name conflict pass; its kind is not served under those names, so rollcall \
             fails it, as kstatus does";
    };

    #[test]
    fn pod_ready() {
        assert_cases(&CORPUS, POD_READY);
    }

    #[test]
    fn job_ready() {
        assert_cases(&CORPUS, JOB_READY);
    }

    #[test]
    fn deployment_ready() {
        assert_cases(&CORPUS, DEPLOYMENT_READY);
    }

    #[test]
    fn volume_ready() {
        assert_cases(&CORPUS, VOLUME_READY);
    }

    #[test]
    fn service_ready_load_balancers_with_external_ips_need_no_ingress() {
        assert_cases(&CORPUS, SERVICE_READY);
    }

    #[test]
    fn daemon_set_ready() {
        assert_cases(&CORPUS, DAEMON_SET_READY);
    }

    #[test]
    fn stateful_set_ready() {
        assert_cases(&CORPUS, STATEFUL_SET_READY);
    }

    #[test]
    fn replica_set_and_replication_controller_ready() {
        assert_cases(&CORPUS, REPLICA_SET_AND_CONTROLLER_READY);
    }

    #[test]
    fn crd_ready() {
        assert_cases(&CORPUS, CRD_READY);
    }

    #[test]
    fn every_object_of_the_corpus_is_a_case() {
        assert_corpus_covered(
            &CORPUS,
            &[
                POD_READY,
                JOB_READY,
                DEPLOYMENT_READY,
                VOLUME_READY,
                SERVICE_READY,
                DAEMON_SET_READY,
                STATEFUL_SET_READY,
                REPLICA_SET_AND_CONTROLLER_READY,
                CRD_READY,
            ],
        );
    }
}

/// kstatus (kubernetes-sigs/cli-utils pkg/kstatus/status; helm 4's default `--wait`, Flux). rollcall
/// reads custom resources as kstatus does; workloads follow `kubectl rollout status`.
mod kstatus {
    use std::sync::LazyLock;

    use super::*;

    static CORPUS: LazyLock<Vec<Value>> =
        LazyLock::new(|| explain_json(&fixture("kstatus.yaml"), &[]));

    const FOLLOWS_KUBECTL_NOT_CONDITIONS: &str = "kstatus also wants Progressing=True with reason \
        NewReplicaSetAvailable (when a progress deadline is set) and Available=True; kubectl \
        rollout status reads the replica counts only, and so does rollcall";

    const POD_CONDITIONS: &[Case] = cases! {
        Pod "no-status" => progressing "Waiting for pod \"no-status\" to be ready (phase Pending)...";
        Pod "ready" => ready "pod \"ready\" is ready";
        Pod "completed" => ready "pod \"completed\" succeeded";
        Pod "completed-unsuccessfully" => failed "pod \"completed-unsuccessfully\" failed"
            unlike upstream: "kstatus calls a Failed pod Current (it has completed); it will never run again, so \
             rollcall fails it, as helm 4's hook pod reader does";
        Pod "being-scheduled" => progressing "Waiting for pod \"being-scheduled\" to be ready (phase Pending)...";
        Pod "unschedulable" => progressing "Waiting for pod \"unschedulable\" to be ready (phase Pending)..."
            unlike upstream: "kstatus fails a pod unschedulable for 15 s; a cluster may scale up, so rollcall only \
             warns (FailedScheduling) and leaves the end to the deadlines";
        Pod "crash-looping" => progressing "Waiting for pod \"crash-looping\" to be ready (phase Running)..."
            unlike upstream: "kstatus fails any CrashLoopBackOff at once; rollcall counts the crash as one incident \
             against failures-allowed-per-replica";
        Pod "running-not-ready" => progressing "Waiting for pod \"running-not-ready\" to be ready (phase Running)...";
        Pod "stalled-condition" => progressing "Waiting for pod \"stalled-condition\" to be ready (phase Running)..."
            unlike upstream: "kstatus reads Stalled/Reconciling on every kind; rollcall on custom resources only, \
             since Kubernetes' own controllers never write them";
    };

    const PVC_CONDITIONS: &[Case] = cases! {
        PersistentVolumeClaim "no-status" => progressing "Waiting for persistent volume claim \"no-status\" to be bound (phase Pending)...";
        PersistentVolumeClaim "bound" => ready "persistent volume claim \"bound\" is bound";
    };

    const STS_CONDITIONS: &[Case] = cases! {
        StatefulSet "no-status" => progressing "Waiting for statefulset spec update to be observed...";
        StatefulSet "bad-status" => progressing "Waiting for 1 pods to be ready...";
        StatefulSet "ok" => ready "statefulset rolling update complete 3 pods at revision ...";
        StatefulSet "less-ready" => progressing "Waiting for 2 pods to be ready...";
        StatefulSet "less-current" => ready "statefulset rolling update complete 1 pods at revision ..."
            unlike upstream: "kstatus also wants currentReplicas >= replicas; kubectl compares the revisions only \
             (and the API always sets a rolling update strategy, so this reading never happens on a \
             cluster)";
        StatefulSet "extra-pods" => ready "statefulset rolling update complete 3 pods at revision ..."
            unlike upstream: "kstatus waits while status.replicas > spec.replicas; kubectl does not";
        StatefulSet "partition-rolling-out" => progressing "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated...";
        StatefulSet "on-delete-unobserved" => progressing "Waiting for statefulset spec update to be observed..."
            unlike upstream: "kstatus calls OnDelete Current before the controller has seen the object; rollcall \
             first waits for observedGeneration, as kubectl does for every StatefulSet";
    };

    const DAEMONSET_CONDITIONS: &[Case] = cases! {
        DaemonSet "no-status" => progressing "Waiting for daemon set spec update to be observed...";
        DaemonSet "bad-status" => ready "daemon set \"bad-status\" successfully rolled out"
            unlike upstream: "kstatus waits for a missing desiredNumberScheduled; kubectl reads it as zero (the \
             controller always writes it: zero nodes to run on is a real answer)";
        DaemonSet "ok" => ready "daemon set \"ok\" successfully rolled out";
        DaemonSet "generation-behind" => progressing "Waiting for daemon set spec update to be observed...";
        DaemonSet "less-ready" => ready "daemon set \"less-ready\" successfully rolled out"
            unlike upstream: "kstatus also compares numberReady; kubectl reads numberAvailable, and available pods \
             are ready pods on any status the controller writes";
        DaemonSet "less-available" => progressing "Waiting for daemon set \"less-available\" rollout to finish: 1 of 3 updated pods are available...";
    };

    const DEPLOYMENT_CONDITIONS: &[Case] = cases! {
        Deployment "no-status" => progressing "Waiting for deployment spec update to be observed...";
        Deployment "ok" => ready "deployment \"ok\" successfully rolled out";
        Deployment "not-progressing" => ready "deployment \"not-progressing\" successfully rolled out"
            unlike upstream: FOLLOWS_KUBECTL_NOT_CONDITIONS;
        Deployment "no-progress-deadline" => ready "deployment \"no-progress-deadline\" successfully rolled out";
        Deployment "not-available" => ready "deployment \"not-available\" successfully rolled out"
            unlike upstream: FOLLOWS_KUBECTL_NOT_CONDITIONS;
        Deployment "progress-deadline-exceeded" => failed "deployment \"progress-deadline-exceeded\" exceeded its progress deadline";
        Deployment "paused" => ready "deployment \"paused\" is paused: no rollout to wait for"
            unlike upstream: "kstatus has no rule for paused and waits (Progressing is Unknown); nothing rolls out \
             while paused, so rollcall is done with a note, as helm --wait";
        Deployment "being-deleted" => ready "deployment \"being-deleted\" successfully rolled out"
            unlike upstream: "kstatus calls any object with a deletionTimestamp Terminating; rollcall judges the \
             rollout, as kubectl and helm, and reports the deletion when the object is gone";
    };

    const REPLICASET_CONDITIONS: &[Case] = cases! {
        ReplicaSet "no-status" => progressing "Waiting for replica set spec update to be observed...";
        ReplicaSet "ok-with-replica-failure-false" => ready "replica set \"ok-with-replica-failure-false\" has 2 available replicas";
        ReplicaSet "ok" => ready "replica set \"ok\" has 2 available replicas";
        ReplicaSet "less-ready" => progressing "Waiting for replica set \"less-ready\": 1 of 3 replicas are ready...";
        ReplicaSet "less-available" => progressing "Waiting for replica set \"less-available\": 1 of 3 replicas are available...";
        ReplicaSet "replica-failure" => ready "replica set \"replica-failure\" has 3 available replicas"
            unlike upstream: "kstatus waits while ReplicaFailure=True; with every replica available that condition \
             is stale, and the FailedCreate Events behind it are incidents in rollcall";
        ReplicaSet "extra-pods" => progressing "Waiting for replica set \"extra-pods\": 2 extra replicas are pending termination...";
    };

    const PDB_CONDITIONS: &[Case] = cases! {
        PodDisruptionBudget "not-observed" => progressing "Waiting for poddisruptionbudget \"not-observed\" spec update to be observed (generation 2, observed 1)...";
        PodDisruptionBudget "observed" => ready "poddisruptionbudget \"observed\" is present";
    };

    const GENERIC_CONDITIONS: &[Case] = cases! {
        Widget "no-status" => progressing "Waiting for widget \"no-status\" to report a status..."
            unlike upstream: "kstatus calls a custom resource without status Current; its operator may not have \
             looked yet, so rollcall takes it as ready only after it stays empty for 10 s";
        Widget "generation-behind" => progressing "Waiting for widget \"generation-behind\" spec update to be observed (generation 2, observed 1)...";
        Widget "generation-ahead" => progressing "Waiting for widget \"generation-ahead\" spec update to be observed (generation 2, observed 3)...";
        Widget "ready" => ready "widget \"ready\" is ready";
        Widget "not-ready" => progressing "Waiting for widget \"not-ready\" to be ready: NotReadyYet...";
        Widget "ready-unknown" => progressing "Waiting for widget \"ready-unknown\" to be ready: Checking...";
        Widget "ready-status-not-standard" => ready "widget \"ready-status-not-standard\" reports neither a readiness condition nor a phase";
        Widget "other-condition" => ready "widget \"other-condition\" reports neither a readiness condition nor a phase";
        Widget "reconciling" => progressing "widget \"reconciling\" is reconciling: Progressing: applying revision 2";
        Widget "stalled" => failed "widget \"stalled\" is stalled: InvalidSpec: size must be positive";
        Widget "reconciling-and-stalled" => failed "widget \"reconciling-and-stalled\" is stalled: InvalidSpec: size must be positive"
            unlike upstream: "kstatus takes whichever of Reconciling and Stalled comes first in the list; rollcall \
             does not let the order of a list decide, and Stalled=True wins";
        Widget "stalled-unknown" => ready "widget \"stalled-unknown\" reports neither a readiness condition nor a phase";
        Widget "phase-failed" => failed "widget \"phase-failed\" is Failed"
            unlike upstream: "kstatus reads no phase and calls this Current; rollcall takes the common phase words";
        Widget "phase-provisioning" => progressing "Waiting for widget \"phase-provisioning\": phase Provisioning..."
            unlike upstream: "kstatus reads no phase and calls this Current; rollcall waits for a ready phase word \
             once a phase is reported";
        SomeCustomKind "no-conditions" => ready "somecustomkind \"no-conditions\" is present";
    };

    const JOB_CONDITIONS: &[Case] = cases! {
        Job "no-status" => progressing "Waiting for job \"no-status\" to complete: 0 of 1 completions, 0 active, 0 failed...";
        Job "complete" => ready "job \"complete\" completed";
        Job "failed" => failed "job \"failed\" failed: JobFailed";
        Job "in-progress" => progressing "Waiting for job \"in-progress\" to complete: 3 of 10 completions, 2 active, 1 failed..."
            unlike upstream: "kstatus calls a started Job Current; rollcall waits for it to complete, as \
             helm --wait-for-jobs";
        Job "suspended" => ready "job \"suspended\" is suspended: nothing runs until it is resumed";
        Job "resumed" => progressing "Waiting for job \"resumed\" to complete: 0 of 1 completions, 0 active, 0 failed...";
        Job "being-suspended" => progressing "Waiting for job \"being-suspended\" to be suspended...";
        Job "being-resumed" => progressing "Waiting for job \"being-resumed\" to complete: 0 of 1 completions, 0 active, 0 failed...";
        Job "suspended-unobserved" => ready "job \"suspended-unobserved\" is suspended: nothing runs until it is resumed"
            unlike upstream: "kstatus waits for the Suspended condition (Job not started); nothing will run either \
             way, so rollcall does not wait for the controller to say so";
        Job "success-criteria-met" => ready "job \"success-criteria-met\" completed";
        Job "failure-target" => failed "job \"failure-target\" failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
            unlike upstream: "kstatus waits for Failed; FailureTarget already makes it certain (the controller only \
             removes the remaining pods before writing Failed)";
    };

    const ALWAYS_READY: &[Case] = cases! {
        CronJob "no-status" => ready "cronjob \"no-status\" is present";
        CronJob "null-status" => ready "cronjob \"null-status\" is present";
        ConfigMap "settings" => ready "configmap \"settings\" is present";
    };

    const FOLLOWS_HELM_FOR_SERVICES: &str = "kstatus only waits for a LoadBalancer's cluster IP; \
        rollcall takes helm's rule: a cluster IP for every type but ExternalName, and for a \
        LoadBalancer an ingress or external IPs";

    const SERVICE_CONDITIONS: &[Case] = cases! {
        Service "default" => progressing "Waiting for service \"default\" to get a cluster IP..."
            unlike upstream: FOLLOWS_HELM_FOR_SERVICES;
        Service "node-port" => progressing "Waiting for service \"node-port\" to get a cluster IP..."
            unlike upstream: FOLLOWS_HELM_FOR_SERVICES;
        Service "load-balancer-with-cluster-ip" => progressing "Waiting for service \"load-balancer-with-cluster-ip\" to get a load balancer ingress..."
            unlike upstream: FOLLOWS_HELM_FOR_SERVICES;
        Service "load-balancer-without-cluster-ip" => progressing "Waiting for service \"load-balancer-without-cluster-ip\" to get a cluster IP...";
        Service "load-balancer-with-ingress" => ready "service \"load-balancer-with-ingress\" is ready";
    };

    const CRD_CONDITIONS: &[Case] = cases! {
        CustomResourceDefinition "no-conditions.example.com" => progressing "Waiting for custom resource definition \"no-conditions.example.com\" to be established...";
        CustomResourceDefinition "installing.example.com" => progressing "Waiting for custom resource definition \"installing.example.com\" to be established...";
        CustomResourceDefinition "names-not-accepted.example.com" => failed "custom resource definition \"names-not-accepted.example.com\" names are not accepted: NameConflict: \"widgets\" is already in use";
        CustomResourceDefinition "established.example.com" => ready "custom resource definition \"established.example.com\" is established";
        CustomResourceDefinition "established-unknown.example.com" => progressing "Waiting for custom resource definition \"established-unknown.example.com\" to be established...";
    };

    #[test]
    fn pod_conditions() {
        assert_cases(&CORPUS, POD_CONDITIONS);
    }

    #[test]
    fn pvc_conditions() {
        assert_cases(&CORPUS, PVC_CONDITIONS);
    }

    #[test]
    fn sts_conditions() {
        assert_cases(&CORPUS, STS_CONDITIONS);
    }

    #[test]
    fn daemonset_conditions() {
        assert_cases(&CORPUS, DAEMONSET_CONDITIONS);
    }

    #[test]
    fn deployment_conditions() {
        assert_cases(&CORPUS, DEPLOYMENT_CONDITIONS);
    }

    #[test]
    fn replicaset_conditions_wait_for_ready_and_surplus_replicas() {
        assert_cases(&CORPUS, REPLICASET_CONDITIONS);
    }

    #[test]
    fn pdb_conditions_honour_a_reported_observed_generation() {
        assert_cases(&CORPUS, PDB_CONDITIONS);
    }

    #[test]
    fn generic_conditions_of_custom_resources() {
        assert_cases(&CORPUS, GENERIC_CONDITIONS);
    }

    #[test]
    fn job_conditions_suspended_is_ready() {
        assert_cases(&CORPUS, JOB_CONDITIONS);
    }

    #[test]
    fn always_ready_kinds() {
        assert_cases(&CORPUS, ALWAYS_READY);
    }

    #[test]
    fn service_conditions() {
        assert_cases(&CORPUS, SERVICE_CONDITIONS);
    }

    #[test]
    fn crd_conditions_names_not_accepted_fail() {
        assert_cases(&CORPUS, CRD_CONDITIONS);
    }

    #[test]
    fn every_object_of_the_corpus_is_a_case() {
        assert_corpus_covered(
            &CORPUS,
            &[
                POD_CONDITIONS,
                PVC_CONDITIONS,
                STS_CONDITIONS,
                DAEMONSET_CONDITIONS,
                DEPLOYMENT_CONDITIONS,
                REPLICASET_CONDITIONS,
                PDB_CONDITIONS,
                GENERIC_CONDITIONS,
                JOB_CONDITIONS,
                ALWAYS_READY,
                SERVICE_CONDITIONS,
                CRD_CONDITIONS,
            ],
        );
    }
}
