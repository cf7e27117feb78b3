//! Server-side printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the columns
//! `kubectl get` shows, computed like kubernetes pkg/printers/internalversion/printers.go.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::store::{self, ResourceType};

/// Whether the client asked for a Table (kubectl get does; plain JSON stays the fallback).
pub fn wanted(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// k8s.io/apimachinery/pkg/util/duration.HumanDuration.
pub fn human_duration(seconds: i64) -> String {
    if seconds < 0 {
        return "0s".into();
    }
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    match () {
        _ if seconds < 120 => format!("{seconds}s"),
        _ if minutes < 10 && seconds % 60 == 0 => format!("{minutes}m"),
        _ if minutes < 10 => format!("{minutes}m{}s", seconds % 60),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 && minutes % 60 == 0 => format!("{hours}h"),
        _ if hours < 8 => format!("{hours}h{}m", minutes % 60),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 192 && hours % 24 == 0 => format!("{days}d"),
        _ if hours < 192 => format!("{days}d{}h", hours % 24),
        _ => format!("{days}d"),
    }
}

fn age(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|at| at.parse::<DateTime<Utc>>().ok())
        .map_or_else(
            || "<unknown>".into(),
            |at| human_duration((Utc::now() - at).num_seconds()),
        )
}

fn text(object: &Value, pointer: &str) -> String {
    match object.pointer(pointer) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn int(object: &Value, pointer: &str) -> i64 {
    object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn items<'a>(object: &'a Value, pointer: &str) -> &'a [Value] {
    object
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn or_none(text: String) -> String {
    if text.is_empty() {
        "<none>".into()
    } else {
        text
    }
}

type Column = (&'static str, &'static str);

fn columns(rt: &ResourceType) -> Vec<Column> {
    let name = ("Name", "string");
    let age = ("Age", "string");
    match *rt {
        store::PODS => vec![
            name,
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
            age,
        ],
        store::DEPLOYMENTS => vec![
            name,
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            age,
        ],
        store::REPLICASETS => vec![
            name,
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            age,
        ],
        store::STATEFULSETS => vec![name, ("Ready", "string"), age],
        store::DAEMONSETS => vec![
            name,
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Node Selector", "string"),
            age,
        ],
        store::JOBS => vec![
            name,
            ("Status", "string"),
            ("Completions", "string"),
            ("Duration", "string"),
            age,
        ],
        store::SERVICES => vec![
            name,
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("External-IP", "string"),
            ("Port(s)", "string"),
            age,
        ],
        store::CONFIGMAPS => vec![name, ("Data", "integer"), age],
        store::SECRETS => vec![name, ("Type", "string"), ("Data", "integer"), age],
        store::NAMESPACES => vec![name, ("Status", "string"), age],
        store::NODES => vec![
            name,
            ("Status", "string"),
            ("Roles", "string"),
            age,
            ("Version", "string"),
        ],
        store::EVENTS => vec![
            ("Last Seen", "string"),
            ("Type", "string"),
            ("Reason", "string"),
            ("Object", "string"),
            ("Message", "string"),
        ],
        _ => vec![name, age],
    }
}

fn pod_cells(pod: &Value) -> Vec<Value> {
    let statuses = items(pod, "/status/containerStatuses");
    let total = items(pod, "/spec/containers").len();
    let ready = statuses.iter().filter(|s| s["ready"] == true).count();
    let mut reason = text(pod, "/status/reason");
    if reason.is_empty() {
        reason = text(pod, "/status/phase");
    }
    let mut running = false;
    for status in statuses.iter().rev() {
        if let Some(waiting) = status
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = waiting.to_owned();
        } else if let Some(terminated) = status.pointer("/state/terminated") {
            reason = match terminated
                .get("reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
            {
                Some(why) => why.to_owned(),
                None => format!("ExitCode:{}", int(terminated, "/exitCode")),
            };
        } else if status["ready"] == true && status.pointer("/state/running").is_some() {
            running = true;
        }
    }
    if reason == "Completed" && running {
        reason = "Running".into();
    }
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        reason = "Terminating".into();
    }
    let restarts: i64 = statuses.iter().map(|s| int(s, "/restartCount")).sum();
    let last_restart = statuses
        .iter()
        .filter_map(|s| {
            s.pointer("/lastState/terminated/finishedAt")
                .and_then(Value::as_str)
        })
        .filter_map(|at| at.parse::<DateTime<Utc>>().ok())
        .max();
    let restarts = match last_restart {
        Some(at) if restarts > 0 => format!(
            "{restarts} ({} ago)",
            human_duration((Utc::now() - at).num_seconds())
        ),
        _ => restarts.to_string(),
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts),
    ]
}

fn service_ports(service: &Value) -> String {
    let ports: Vec<String> = items(service, "/spec/ports")
        .iter()
        .map(|port| {
            let node_port = port
                .get("nodePort")
                .and_then(Value::as_i64)
                .map(|n| format!(":{n}"))
                .unwrap_or_default();
            format!(
                "{}{node_port}/{}",
                int(port, "/port"),
                text(port, "/protocol")
            )
        })
        .collect();
    or_none(ports.join(","))
}

fn job_status(job: &Value) -> String {
    let condition = |kind: &str| {
        items(job, "/status/conditions")
            .iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    };
    if condition("Complete") {
        "Complete".into()
    } else if condition("Failed") {
        "Failed".into()
    } else if job.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating".into()
    } else if condition("Suspended") {
        "Suspended".into()
    } else {
        "Running".into()
    }
}

fn cells(rt: &ResourceType, object: &Value) -> Vec<Value> {
    let name = json!(text(object, "/metadata/name"));
    let created = json!(age(object, "/metadata/creationTimestamp"));
    let mut row = vec![name];
    match *rt {
        store::PODS => row.extend(pod_cells(object)),
        store::DEPLOYMENTS => row.extend([
            json!(format!(
                "{}/{}",
                int(object, "/status/readyReplicas"),
                int(object, "/spec/replicas")
            )),
            json!(int(object, "/status/updatedReplicas")),
            json!(int(object, "/status/availableReplicas")),
        ]),
        store::REPLICASETS => row.extend([
            json!(int(object, "/spec/replicas")),
            json!(int(object, "/status/replicas")),
            json!(int(object, "/status/readyReplicas")),
        ]),
        store::STATEFULSETS => {
            row.push(json!(format!(
                "{}/{}",
                int(object, "/status/readyReplicas"),
                int(object, "/spec/replicas")
            )));
        }
        store::DAEMONSETS => {
            let selector: Vec<String> = object
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|labels| {
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default();
            row.extend([
                json!(int(object, "/status/desiredNumberScheduled")),
                json!(int(object, "/status/currentNumberScheduled")),
                json!(int(object, "/status/numberReady")),
                json!(int(object, "/status/updatedNumberScheduled")),
                json!(int(object, "/status/numberAvailable")),
                json!(or_none(selector.join(","))),
            ]);
        }
        store::JOBS => {
            let completions = object
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .map_or_else(
                    || {
                        format!(
                            "{}/1 of {}",
                            int(object, "/status/succeeded"),
                            int(object, "/spec/parallelism")
                        )
                    },
                    |c| format!("{}/{c}", int(object, "/status/succeeded")),
                );
            let start = object
                .pointer("/status/startTime")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<DateTime<Utc>>().ok());
            let end = object
                .pointer("/status/completionTime")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                .unwrap_or_else(Utc::now);
            let duration = start
                .map(|start| human_duration((end - start).num_seconds()))
                .unwrap_or_default();
            row.extend([
                json!(job_status(object)),
                json!(completions),
                json!(duration),
            ]);
        }
        store::SERVICES => {
            let external: Vec<String> = items(object, "/spec/externalIPs")
                .iter()
                .filter_map(|ip| ip.as_str().map(str::to_owned))
                .collect();
            row.extend([
                json!(text(object, "/spec/type")),
                json!(or_none(text(object, "/spec/clusterIP"))),
                json!(or_none(external.join(","))),
                json!(service_ports(object)),
            ]);
        }
        store::CONFIGMAPS => {
            let data = object
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |d| d.len())
                + object
                    .get("binaryData")
                    .and_then(Value::as_object)
                    .map_or(0, |d| d.len());
            row.push(json!(data));
        }
        store::SECRETS => {
            let data = object
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |d| d.len());
            row.extend([json!(text(object, "/type")), json!(data)]);
        }
        store::NAMESPACES => row.push(json!(text(object, "/status/phase"))),
        store::NODES => {
            let ready = items(object, "/status/conditions")
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            row.extend([
                json!(if ready { "Ready" } else { "NotReady" }),
                json!("<none>"),
            ]);
            row.push(created);
            row.push(json!(text(object, "/status/nodeInfo/kubeletVersion")));
            return row;
        }
        store::EVENTS => {
            let last_seen = [
                "/lastTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find(|pointer| object.pointer(pointer).is_some_and(|t| t.is_string()))
            .map_or_else(String::new, |pointer| age(object, pointer));
            let involved = format!(
                "{}/{}",
                text(object, "/involvedObject/kind").to_lowercase(),
                text(object, "/involvedObject/name")
            );
            return vec![
                json!(last_seen),
                json!(text(object, "/type")),
                json!(text(object, "/reason")),
                json!(involved),
                json!(text(object, "/message")),
            ];
        }
        _ => {}
    }
    row.push(created);
    row
}

fn row(rt: &ResourceType, object: &Value, include_object: bool) -> Value {
    let embedded = if include_object {
        object.clone()
    } else {
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
    };
    json!({"cells": cells(rt, object), "object": embedded})
}

/// A Table of the objects; `include_object` (`includeObject=Object`) embeds them whole, otherwise
/// their metadata only (the apiserver's default).
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: u64,
    include_object: bool,
) -> Value {
    let definitions: Vec<Value> = columns(rt)
        .into_iter()
        .map(|(name, kind)| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": kind, "format": format, "description": "", "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| row(rt, object, include_object))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
    }

    #[test]
    fn pod_rows_show_readiness_status_and_restarts() {
        let pod = json!({
            "metadata": {"name": "web-0", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
        });
        let table = table(&store::PODS, &[pod], 7, false);
        assert_eq!(table["columnDefinitions"][2]["name"], "Status");
        let cells = &table["rows"][0]["cells"];
        assert_eq!(cells[0], "web-0");
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "2");
        assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
    }
}
