//! kubesim: a simulated Kubernetes cluster that speaks the real Kubernetes HTTP API, so that unmodified
//! clients (helm, kubectl, kube-rs) can be tested against it on machines where no cluster can run.

pub mod behavior;
pub mod controllers;
pub mod kubelet;
pub mod logs;
pub mod options;
pub mod recorder;
pub mod store;
