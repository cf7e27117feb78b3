//! kubesim's API held to real clients: helm, kubectl, kube-rs, and raw HTTP for what they cannot show.

mod helm;
mod http;
mod kube_rs;
mod kubectl;
mod support;
