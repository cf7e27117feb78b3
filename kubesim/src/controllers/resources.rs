//! The small allocators: Service ClusterIPs from 10.96.0.0/12 and PersistentVolumeClaims bound to a
//! dynamically provisioned volume.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::control_loop::{Context, Reconciler};
use crate::pod_util::{self, is_being_deleted};
use crate::store::{PVCS, SERVICES};

pub(crate) struct Controller;

impl Reconciler for Controller {
    fn sync(&mut self, context: &Context) -> Option<Duration> {
        allocate_cluster_ips(context);
        bind_claims(context);
        None
    }
}

/// The first address of the service range, 10.96.0.1, belongs to the `kubernetes` Service.
const SERVICE_RANGE_START: u32 = u32::from_be_bytes([10, 96, 0, 10]);
const SERVICE_RANGE_END: u32 = u32::from_be_bytes([10, 111, 255, 254]);

fn needs_cluster_ip(service: &Value) -> bool {
    service["spec"]["type"] != "ExternalName"
        && service["spec"]["clusterIP"]
            .as_str()
            .is_none_or(str::is_empty)
}

/// The lowest free address of the service range.
pub(crate) fn next_free_ip(used: &HashSet<String>) -> Option<Ipv4Addr> {
    (SERVICE_RANGE_START..=SERVICE_RANGE_END)
        .map(Ipv4Addr::from)
        .find(|ip| !used.contains(&ip.to_string()))
}

fn allocate_cluster_ips(context: &Context) {
    let (services, _) = context.store.list(&SERVICES, None);
    let mut used: HashSet<String> = services
        .iter()
        .filter_map(|service| service["spec"]["clusterIP"].as_str().map(str::to_owned))
        .collect();
    for service in services
        .iter()
        .filter(|service| needs_cluster_ip(service) && !is_being_deleted(service))
    {
        let Some(ip) = next_free_ip(&used) else {
            tracing::warn!("service IP range exhausted");
            return;
        };
        let ip = ip.to_string();
        let result = context.store.modify(
            &SERVICES,
            Some(pod_util::namespace(service)),
            pod_util::name(service),
            |object| {
                if needs_cluster_ip(object) {
                    object["spec"]["clusterIP"] = json!(ip);
                    object["spec"]["clusterIPs"] = json!([ip]);
                }
            },
        );
        match result {
            Ok(_) => {
                used.insert(ip);
            }
            Err(error) => tracing::debug!(%error, "cluster IP not assigned"),
        }
    }
}

fn bind_claims(context: &Context) {
    let (claims, _) = context.store.list(&PVCS, None);
    for claim in claims
        .iter()
        .filter(|claim| claim["status"]["phase"] != "Bound" && !is_being_deleted(claim))
    {
        let volume = format!("pvc-{}", pod_util::uid(claim));
        let result = context.store.modify(&PVCS, Some(pod_util::namespace(claim)), pod_util::name(claim), |object| {
            if object["spec"]["volumeName"].as_str().is_none_or(str::is_empty) {
                object["spec"]["volumeName"] = json!(volume);
            }
            let access_modes = object["spec"]["accessModes"].clone();
            let capacity = object["spec"]["resources"]["requests"]["storage"].clone();
            object["status"] = json!({"phase": "Bound", "accessModes": access_modes, "capacity": {"storage": capacity}});
        });
        if let Err(error) = result {
            tracing::debug!(%error, "claim not bound");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ips_come_from_the_service_range_in_order() {
        let mut used = HashSet::new();
        assert_eq!(next_free_ip(&used), Some(Ipv4Addr::new(10, 96, 0, 10)));
        used.insert("10.96.0.10".to_owned());
        assert_eq!(next_free_ip(&used), Some(Ipv4Addr::new(10, 96, 0, 11)));
        assert!(needs_cluster_ip(&json!({"spec": {"type": "ClusterIP"}})));
        assert!(!needs_cluster_ip(&json!({"spec": {"clusterIP": "None"}})));
        assert!(!needs_cluster_ip(
            &json!({"spec": {"type": "ExternalName"}})
        ));
    }
}
