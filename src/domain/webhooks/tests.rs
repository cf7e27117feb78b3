use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::delivery::{GITHUB_DELIVERY, GITHUB_EVENT};
use super::*;
use crate::domain::chart_allowlist::OciLocation;

const SECRET: &str = "It's a Secret to Everybody";

fn spec(value: Value) -> HookSpec {
    serde_json::from_value(value).expect("a hook spec")
}

fn web_push() -> Value {
    json!({
        "name": "web-push",
        "provider": "github",
        "target": {"namespace": "prod", "release": "web", "chart": {"path": "web"}},
        "values_from": {"/after": "image.tag"},
        "events": ["push"],
        "refs": ["refs/heads/main", "refs/tags/v*"],
    })
}

fn definition(value: Value) -> HookDefinition {
    HookDefinition::parse(spec(value), SECRET.into(), "secret").expect("a valid hook")
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|error| error.field.as_str()).collect()
}

fn github(event: &str, payload: Value) -> Received {
    let mut headers = HeaderMap::new();
    headers.insert(GITHUB_EVENT, HeaderValue::from_str(event).unwrap());
    headers.insert(GITHUB_DELIVERY, HeaderValue::from_static("d-1"));
    Received::read(Provider::Github, &headers, payload).expect("a delivery id")
}

fn push(git_ref: &str) -> Value {
    json!({
        "ref": git_ref,
        "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "deleted": false,
        "sender": {"login": "octocat"},
        "head_commit": {"message": "never reaches helm"},
    })
}

fn ignored(decision: Decision) -> String {
    match decision {
        Decision::Ignore(why) => why,
        other => panic!("expected the delivery to be ignored, got {other:?}"),
    }
}

#[test]
fn every_invalid_part_of_a_definition_is_named() {
    let mut bad = web_push();
    bad["name"] = json!("Web Push");
    bad["values_from"] = json!({"after": "image.tag"});
    bad["refs"] = json!(["refs/heads/[main"]);
    bad["target"]["chart_version_from"] = json!("release/tag_name");
    let errors = HookDefinition::parse(spec(bad), "short".into(), "secret").unwrap_err();
    assert_eq!(
        fields(&errors),
        [
            "name",
            "secret",
            "target.chart_version_from",
            "values_from.after",
            "refs[0]"
        ]
    );
    let mut unknown = web_push();
    unknown["provider"] = json!("bitbucket");
    let errors = HookDefinition::parse(spec(unknown), SECRET.into(), "secret_file").unwrap_err();
    assert_eq!(fields(&errors), ["provider"]);
    assert!(errors[0].message.contains("bitbucket"), "{errors:?}");
    let mut events = web_push();
    events["events"] = json!(["push", "Push Hook"]);
    let errors = HookDefinition::parse(spec(events), SECRET.into(), "secret").unwrap_err();
    assert_eq!(fields(&errors), ["events[1]"]);
}

#[test]
fn the_target_is_checked_as_a_deploy_would_be() {
    let mut catalog = ChartSources::default();
    catalog
        .allowed
        .allow_registry(OciLocation::parse("ghcr.io/acme").unwrap());
    assert_eq!(definition(web_push()).check_target(&catalog), Ok(()));
    let mut bad = web_push();
    bad["target"]["release"] = json!("Web");
    bad["target"]["timeout"] = json!("forever");
    let errors = definition(bad).check_target(&catalog).unwrap_err();
    assert_eq!(fields(&errors), ["target.release", "target.timeout"]);
    let mut versioned = web_push();
    versioned["target"]["chart_version_from"] = json!("/release/tag_name");
    let errors = definition(versioned.clone())
        .check_target(&catalog)
        .unwrap_err();
    assert_eq!(fields(&errors), ["target.chart_version_from"]);
    versioned["target"]["chart"] = json!({"oci": "oci://ghcr.io/acme/web"});
    assert_eq!(definition(versioned.clone()).check_target(&catalog), Ok(()));
    versioned["target"]["chart"] = json!({"oci": "oci://169.254.169.254/acme/web"});
    let errors = definition(versioned).check_target(&catalog).unwrap_err();
    assert_eq!(fields(&errors), ["target.chart.oci"]);
}

#[test]
fn a_matching_push_asks_for_its_commit_and_records_its_origin() {
    let hook = definition(web_push());
    let received = github("push", push("refs/heads/main"));
    let Decision::Deploy(request) = hook.decide(&received).unwrap() else {
        panic!("a push to main deploys");
    };
    assert_eq!(
        Value::Object(request.values.clone().unwrap()),
        json!({"image": {"tag": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}}),
        "only the mapped value reaches helm"
    );
    assert_eq!(request.labels["rollcall.dev/hook"], "web-push");
    assert_eq!(request.labels["rollcall.dev/hook-delivery"], "d-1");
    assert_eq!(request.labels["rollcall.dev/hook-provider"], "github");
    assert_eq!(request.labels["rollcall.dev/ref"], "refs/heads/main");
    assert_eq!(
        request.labels["rollcall.dev/commit"],
        "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    );
    assert_eq!(request.labels["rollcall.dev/sender"], "octocat");
    assert_eq!(hook.requested_by(), "hook:web-push");
    let tag = hook
        .decide(&github("push", push("refs/tags/v1.4.2")))
        .unwrap();
    assert!(matches!(tag, Decision::Deploy(_)), "{tag:?}");
}

#[test]
fn filters_say_why_a_delivery_deploys_nothing() {
    let hook = definition(web_push());
    assert!(matches!(
        hook.decide(&github(
            "ping",
            json!({"zen": "Keep it logically awesome."})
        )),
        Ok(Decision::Ping)
    ));
    let why = ignored(
        hook.decide(&github("push", push("refs/heads/feature/x")))
            .unwrap(),
    );
    assert_eq!(
        why,
        "ref refs/heads/feature/x matches none of the hook's refs (refs/heads/main, refs/tags/v*)"
    );
    let why = ignored(
        hook.decide(&github("issues", json!({"action": "opened"})))
            .unwrap(),
    );
    assert!(why.contains("not on \"issues\""), "{why}");
    let release = json!({"action": "published", "release": {"tag_name": "v2"}});
    let why = ignored(hook.decide(&github("release", release)).unwrap());
    assert!(why.contains("not among the hook's events (push)"), "{why}");
    let mut deleted = push("refs/heads/main");
    deleted["deleted"] = json!(true);
    deleted["after"] = json!("0000000000000000000000000000000000000000");
    let why = ignored(hook.decide(&github("push", deleted)).unwrap());
    assert_eq!(why, "the push deletes refs/heads/main");
}

#[test]
fn star_stops_at_slashes_and_events_without_a_ref_match_only_an_empty_filter() {
    let mut branches = web_push();
    branches["refs"] = json!(["refs/heads/*"]);
    branches["events"] = json!([]);
    let hook = definition(branches);
    assert!(matches!(
        hook.decide(&github("push", push("refs/heads/main"))),
        Ok(Decision::Deploy(_))
    ));
    assert!(matches!(
        hook.decide(&github("push", push("refs/heads/feature/x"))),
        Ok(Decision::Ignore(_))
    ));
    let package =
        json!({"action": "published", "registry_package": {"package_version": {}}, "after": "x"});
    let why = ignored(
        hook.decide(&github("registry_package", package.clone()))
            .unwrap(),
    );
    assert!(why.contains("carry no ref"), "{why}");
    let mut any_ref = web_push();
    any_ref["refs"] = json!([]);
    any_ref["events"] = json!([]);
    assert!(matches!(
        definition(any_ref).decide(&github("registry_package", package)),
        Ok(Decision::Deploy(_))
    ));
}

#[test]
fn a_deploy_the_payload_cannot_fill_is_refused_naming_the_pointer() {
    let mut versioned = web_push();
    versioned["events"] = json!(["release"]);
    versioned["refs"] = json!([]);
    versioned["target"]["chart"] = json!({"oci": "oci://ghcr.io/acme/web"});
    versioned["target"]["chart_version_from"] = json!("/release/tag_name");
    let hook = definition(versioned);
    let release = json!({"action": "published", "release": {"tag_name": "1.4.2"}});
    let errors = hook.decide(&github("release", release)).unwrap_err();
    assert_eq!(fields(&errors), ["/after"]);
    let release = json!({"action": "published", "after": "abc", "release": {"tag_name": "1.4.2"}});
    let Decision::Deploy(request) = hook.decide(&github("release", release)).unwrap() else {
        panic!("a published release deploys");
    };
    assert_eq!(request.chart.version.as_deref(), Some("1.4.2"));
    assert_eq!(request.chart.oci.as_deref(), Some("oci://ghcr.io/acme/web"));
}

#[test]
fn secrets_are_written_one_way_per_source() {
    let mut api = spec(web_push());
    api.secret = Some(SECRET.into());
    assert_eq!(api.take_inline_secret().unwrap().as_deref(), Some(SECRET));
    assert!(api.secret.is_none());
    api.secret_file = Some("/run/secrets/hook".into());
    assert_eq!(
        fields(&api.take_inline_secret().unwrap_err()),
        ["secret_file"]
    );
    assert_eq!(
        api.secret_reference(),
        Ok(SecretReference::File("/run/secrets/hook".into()))
    );
    api.secret_env = Some("HOOK_SECRET".into());
    assert_eq!(api.secret_reference().unwrap_err().field, "secret_env");
    api.secret_file = None;
    api.secret = Some(SECRET.into());
    assert_eq!(api.secret_reference().unwrap_err().field, "secret");
}
