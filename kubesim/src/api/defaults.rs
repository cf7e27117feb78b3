//! The apiserver's defaulting (pkg/apis/*/v1/defaults.go) for the built-in kinds clients read back:
//! `kubectl rollout status` refuses a StatefulSet without `updateStrategy.type`, trackers read
//! `strategy.rollingUpdate`, `progressDeadlineSeconds`, `backoffLimit` and friends.

use serde_json::{Value, json};

use crate::store::{self, ResourceType};

/// Sets `value` at the JSON pointer when absent (or null), creating parent objects.
fn default(object: &mut Value, pointer: &str, value: Value) {
    if object
        .pointer(pointer)
        .is_some_and(|existing| !existing.is_null())
    {
        return;
    }
    let mut current = object;
    let mut segments = pointer.trim_start_matches('/').split('/').peekable();
    while let Some(segment) = segments.next() {
        if !current.is_object() {
            *current = json!({});
        }
        let map = current.as_object_mut().expect("made an object above");
        if segments.peek().is_none() {
            map.insert(segment.to_owned(), value);
            return;
        }
        current = map.entry(segment.to_owned()).or_insert_with(|| json!({}));
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

pub fn apply(rt: &ResourceType, object: &mut Value) {
    match *rt {
        store::DEPLOYMENTS => {
            default(object, "/spec/replicas", json!(1));
            default(object, "/spec/strategy/type", json!("RollingUpdate"));
            if text(object, "/spec/strategy/type") == Some("RollingUpdate") {
                default(
                    object,
                    "/spec/strategy/rollingUpdate/maxUnavailable",
                    json!("25%"),
                );
                default(
                    object,
                    "/spec/strategy/rollingUpdate/maxSurge",
                    json!("25%"),
                );
            }
            default(object, "/spec/revisionHistoryLimit", json!(10));
            default(object, "/spec/progressDeadlineSeconds", json!(600));
            pod_template(object);
        }
        store::REPLICASETS => {
            default(object, "/spec/replicas", json!(1));
            pod_template(object);
        }
        store::STATEFULSETS => {
            default(object, "/spec/replicas", json!(1));
            default(object, "/spec/podManagementPolicy", json!("OrderedReady"));
            default(object, "/spec/updateStrategy/type", json!("RollingUpdate"));
            if text(object, "/spec/updateStrategy/type") == Some("RollingUpdate") {
                default(
                    object,
                    "/spec/updateStrategy/rollingUpdate/partition",
                    json!(0),
                );
            }
            default(object, "/spec/revisionHistoryLimit", json!(10));
            default(
                object,
                "/spec/persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            pod_template(object);
        }
        store::DAEMONSETS => {
            default(object, "/spec/updateStrategy/type", json!("RollingUpdate"));
            if text(object, "/spec/updateStrategy/type") == Some("RollingUpdate") {
                default(
                    object,
                    "/spec/updateStrategy/rollingUpdate/maxUnavailable",
                    json!(1),
                );
                default(
                    object,
                    "/spec/updateStrategy/rollingUpdate/maxSurge",
                    json!(0),
                );
            }
            default(object, "/spec/revisionHistoryLimit", json!(10));
            pod_template(object);
        }
        store::JOBS => {
            default(object, "/spec/parallelism", json!(1));
            if object.pointer("/spec/completions").is_none()
                && object.pointer("/spec/parallelism") == Some(&json!(1))
            {
                default(object, "/spec/completions", json!(1));
            }
            default(object, "/spec/backoffLimit", json!(6));
            default(object, "/spec/completionMode", json!("NonIndexed"));
            default(object, "/spec/suspend", json!(false));
            pod_template(object);
        }
        store::PODS => {
            if let Some(spec) = object.get_mut("spec") {
                pod_spec(spec);
            }
        }
        store::SERVICES => service(object),
        _ => {}
    }
}

fn pod_template(object: &mut Value) {
    if let Some(spec) = object.pointer_mut("/spec/template/spec") {
        pod_spec(spec);
    }
}

fn pod_spec(spec: &mut Value) {
    default(spec, "/restartPolicy", json!("Always"));
    default(spec, "/terminationGracePeriodSeconds", json!(30));
    default(spec, "/dnsPolicy", json!("ClusterFirst"));
    default(spec, "/schedulerName", json!("default-scheduler"));
    default(spec, "/securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers {
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let tag = image
                .rsplit('/')
                .next()
                .and_then(|last| last.split_once(':'))
                .map(|(_, tag)| tag);
            let pull_policy = if tag.is_none_or(|tag| tag == "latest") && !image.contains('@') {
                "Always"
            } else {
                "IfNotPresent"
            };
            default(container, "/imagePullPolicy", json!(pull_policy));
            default(
                container,
                "/terminationMessagePath",
                json!("/dev/termination-log"),
            );
            default(container, "/terminationMessagePolicy", json!("File"));
            if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports {
                    default(port, "/protocol", json!("TCP"));
                }
            }
        }
    }
}

fn service(object: &mut Value) {
    default(object, "/spec/type", json!("ClusterIP"));
    default(object, "/spec/sessionAffinity", json!("None"));
    if let Some(ports) = object
        .pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
    {
        for port in ports {
            default(port, "/protocol", json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                default(port, "/targetPort", number);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_get_the_apiserver_defaults() {
        let mut statefulset = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "r/x:1.2"}]}}}});
        apply(&store::STATEFULSETS, &mut statefulset);
        assert_eq!(
            statefulset["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(statefulset["spec"]["replicas"], 1);
        let containers = &statefulset["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["imagePullPolicy"], "Always");
        assert_eq!(containers[1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            statefulset["spec"]["template"]["spec"]["restartPolicy"],
            "Always"
        );

        let mut deployment = json!({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}});
        apply(&store::DEPLOYMENTS, &mut deployment);
        assert_eq!(deployment["spec"]["replicas"], 3);
        assert!(
            deployment["spec"]["strategy"]
                .get("rollingUpdate")
                .is_none()
        );
        assert_eq!(deployment["spec"]["progressDeadlineSeconds"], 600);
    }

    #[test]
    fn service_ports_default_target_port_and_protocol() {
        let mut service_object = json!({"spec": {"ports": [{"port": 80}]}});
        apply(&store::SERVICES, &mut service_object);
        assert_eq!(
            service_object["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        assert_eq!(service_object["spec"]["type"], "ClusterIP");
    }
}
