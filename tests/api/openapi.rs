//! The checked-in OpenAPI document must match what the code generates.

#[test]
fn checked_in_openapi_document_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let generated = format!("{}\n", rollcall::cli::openapi_json());
    assert!(
        checked_in == generated,
        "openapi/openapi.json is out of date; regenerate it with:\n    cargo run -q -- openapi > openapi/openapi.json"
    );
}

/// Clients switch on `verdict.reason`: the document lists every reason, each with its meaning.
#[test]
fn the_document_lists_every_verdict_reason_with_its_description() {
    use rollcall::domain::verdict::VerdictReason;
    let document: serde_json::Value =
        serde_json::from_str(&rollcall::cli::openapi_json()).expect("JSON");
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["Verdict"]["properties"]["reason"]["$ref"],
        "#/components/schemas/VerdictReason"
    );
    let schema = &schemas["VerdictReason"];
    let listed: Vec<&str> = schema["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    let descriptions = schema["x-enum-descriptions"]
        .as_array()
        .expect("descriptions");
    assert_eq!(listed.len(), VerdictReason::ALL.len());
    for (index, reason) in VerdictReason::ALL.iter().enumerate() {
        assert_eq!(listed[index], reason.as_str());
        assert_eq!(descriptions[index], reason.description());
        assert!(
            schema["description"]
                .as_str()
                .is_some_and(|text| text.contains(&format!("`{reason}`: "))),
            "{reason} is not described"
        );
    }
}
