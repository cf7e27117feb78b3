//! Request body, query and path extractors whose rejections are problem JSON naming the position
//! or the field path. Each refuses text with a NUL character (U+0000), which PostgreSQL's `text`
//! and `jsonb` cannot hold, naming where it was: one check at each door instead of one per field.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::Bytes;
use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::error::ApiError;
use crate::domain::FieldError;

/// A JSON body (content type `application/json` or `*+json`), not yet parsed.
pub struct JsonBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request(rejection.body_text())
                }
            })?;
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        let is_json =
            essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json");
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(format!(
                "expected content type application/json, got {:?}",
                if content_type.is_empty() {
                    "none"
                } else {
                    &content_type
                }
            )));
        }
        Ok(Self(bytes))
    }
}

impl JsonBytes {
    pub fn parse<T: DeserializeOwned + ToSchema + 'static>(&self) -> Result<T, ApiError> {
        parse_request(&self.0)
    }

    /// sha256 of the body's canonical JSON (object keys sorted, no whitespace), so that the same
    /// request formatted differently is recognised as the same.
    pub fn canonical_sha256(&self) -> Result<String, ApiError> {
        let value: serde_json::Value = parse_json(&self.0)?;
        let canonical = serde_json::to_vec(&value).map_err(ApiError::internal)?;
        Ok(hex::encode(Sha256::digest(canonical)))
    }
}

/// A parsed JSON body.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + ToSchema + 'static, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = JsonBytes::from_request(request, state).await?;
        Ok(Self(bytes.parse()?))
    }
}

/// An optional JSON body: absent (empty) or `null` is `None`.
pub struct MaybeJson<T>(pub Option<T>);

impl<T: DeserializeOwned + ToSchema + 'static, S: Send + Sync> FromRequest<S> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let has_body = request.headers().contains_key(header::CONTENT_TYPE)
            || request
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|length| length != "0");
        if !has_body {
            return Ok(Self(None));
        }
        let bytes = JsonBytes::from_request(request, state).await?;
        if bytes.0.is_empty() {
            return Ok(Self(None));
        }
        let value = parse_json(&bytes.0)?;
        refuse_arrays_for_objects::<T>(&bytes.0)?;
        Ok(Self(value))
    }
}

/// Malformed JSON is a 400 naming line and column; JSON of the wrong shape is a 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let inner = error.inner();
        if inner.is_data() {
            let message = strip_position(&inner.to_string());
            let mut field = path_text(&error.path().to_string());
            // A missing field is named itself, not by its parent object (unknown ones already are).
            if let Some(name) = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                field = if field.is_empty() {
                    name.to_owned()
                } else {
                    format!("{field}.{name}")
                };
            }
            ApiError::invalid_fields(vec![FieldError::new(field, message)])
        } else {
            malformed(inner)
        }
    })?;
    deserializer.end().map_err(|error| malformed(&error))?;
    refuse_nul_in_json(bytes)?;
    Ok(value)
}

/// A request body of the document's type `T`: as [`parse_json`], and shaped as `T`'s schema says.
pub fn parse_request<T: DeserializeOwned + ToSchema + 'static>(
    bytes: &[u8],
) -> Result<T, ApiError> {
    let value = parse_json(bytes)?;
    refuse_arrays_for_objects::<T>(bytes)?;
    Ok(value)
}

/// A 422 naming the first array where `T`'s schema wants an object (see [`Shapes`]).
fn refuse_arrays_for_objects<T: ToSchema + 'static>(bytes: &[u8]) -> Result<(), ApiError> {
    // JSON without an array cannot hold one where an object belongs.
    if bytes.contains(&b'[') {
        let json: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|error| malformed(&error))?;
        let shapes = Shapes::of::<T>();
        if let Some(field) = shapes.array_for_object(&json, &shapes.root, "") {
            return Err(ApiError::invalid_fields(vec![FieldError::new(
                field,
                "must be an object, not an array",
            )]));
        }
    }
    Ok(())
}

/// serde reads a struct from a JSON array of its fields as well, which the document does not
/// allow: [`Shapes::array_for_object`] finds an array where a request type's schema allows an
/// object and no array. Built once per type from its schema and the schemas it refers to.
struct Shapes {
    root: serde_json::Value,
    components: HashMap<String, serde_json::Value>,
}

impl Shapes {
    fn of<T: ToSchema + 'static>() -> Arc<Shapes> {
        static BY_TYPE: LazyLock<Mutex<HashMap<TypeId, Arc<Shapes>>>> =
            LazyLock::new(Mutex::default);
        let mut by_type = BY_TYPE.lock().unwrap_or_else(PoisonError::into_inner);
        by_type
            .entry(TypeId::of::<T>())
            .or_insert_with(|| {
                let mut named = Vec::new();
                T::schemas(&mut named);
                let to_json = |schema| serde_json::to_value(schema).unwrap_or_default();
                Arc::new(Shapes {
                    root: to_json(T::schema()),
                    components: named
                        .into_iter()
                        .map(|(name, schema)| (name, to_json(schema)))
                        .collect(),
                })
            })
            .clone()
    }

    /// `schema` with its `$ref`s followed, and its `oneOf`/`anyOf`/`allOf` branches.
    fn branches<'s>(
        &'s self,
        schema: &'s serde_json::Value,
        found: &mut Vec<&'s serde_json::Value>,
    ) {
        let referred = schema
            .get("$ref")
            .and_then(serde_json::Value::as_str)
            .and_then(|reference| reference.rsplit('/').next())
            .and_then(|name| self.components.get(name));
        if let Some(referred) = referred {
            return self.branches(referred, found);
        }
        found.push(schema);
        for combinator in ["oneOf", "anyOf", "allOf"] {
            let branches = schema.get(combinator).and_then(serde_json::Value::as_array);
            for branch in branches.into_iter().flatten() {
                self.branches(branch, found);
            }
        }
    }

    /// The path of the first array in `value` where `schema` allows an object and no array.
    fn array_for_object(
        &self,
        value: &serde_json::Value,
        schema: &serde_json::Value,
        path: &str,
    ) -> Option<String> {
        let mut branches = Vec::new();
        self.branches(schema, &mut branches);
        match value {
            serde_json::Value::Array(items) => {
                let allows = |kind: &str| {
                    branches.iter().any(|branch| match branch.get("type") {
                        Some(serde_json::Value::String(one)) => one == kind,
                        Some(serde_json::Value::Array(many)) => many.iter().any(|one| one == kind),
                        _ => false,
                    })
                };
                if allows("object") && !allows("array") {
                    return Some(path.to_owned());
                }
                let item_schemas: Vec<_> = branches.iter().filter_map(|b| b.get("items")).collect();
                items.iter().enumerate().find_map(|(index, item)| {
                    let path = format!("{path}[{index}]");
                    item_schemas
                        .iter()
                        .find_map(|schema| self.array_for_object(item, schema, &path))
                })
            }
            serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                branches
                    .iter()
                    .filter_map(|branch| {
                        branch
                            .get("properties")
                            .and_then(|properties| properties.get(key))
                            .or_else(|| {
                                branch.get("additionalProperties").filter(|a| a.is_object())
                            })
                    })
                    .find_map(|schema| self.array_for_object(item, schema, &path))
            }),
            _ => None,
        }
    }
}

const NUL_MESSAGE: &str = "must not contain a NUL character (\\u0000)";

/// JSON can carry NUL only escaped, so bodies without `\u0000` are not walked.
fn refuse_nul_in_json(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes
        .windows(6)
        .any(|window| window.eq_ignore_ascii_case(b"\\u0000"))
    {
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| malformed(&error))?;
    match nul_field(&value, "") {
        Some(field) => Err(ApiError::invalid_fields(vec![FieldError::new(
            field,
            NUL_MESSAGE,
        )])),
        None => Ok(()),
    }
}

/// The path of the first string (or object key: then its object's path) holding a NUL, in the
/// notation of the other field errors (`labels.team`, `notify[0].url`).
fn nul_field(value: &serde_json::Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(text) => text.contains('\0').then(|| path.to_owned()),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_field(item, &format!("{path}[{index}]"))),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                Some(path.to_owned())
            } else {
                nul_field(item, &join(key))
            }
        }),
        serde_json::Value::Number(_) | serde_json::Value::Bool(_) | serde_json::Value::Null => None,
    }
}

fn malformed(error: &serde_json::Error) -> ApiError {
    ApiError::bad_request(format!(
        "malformed JSON at line {} column {}: {}",
        error.line(),
        error.column(),
        strip_position(&error.to_string())
    ))
}

fn path_text(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        path.to_owned()
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters; unknown or ill-typed parameters are a 400 naming them.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        query_pairs(parts)?;
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let field = path_text(&error.path().to_string());
                ApiError::invalid_query(vec![FieldError::new(field, error.inner().to_string())])
            })
    }
}

/// Decoded query pairs, for queries with repeated keys (`label=a=b&label=c=d`).
pub fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let errors: Vec<FieldError> = pairs
        .iter()
        .filter(|(key, value)| key.contains('\0') || value.contains('\0'))
        .map(|(key, _)| FieldError::new(key.replace('\0', "\\u0000"), NUL_MESSAGE))
        .collect();
    if errors.is_empty() {
        Ok(pairs)
    } else {
        Err(ApiError::invalid_query(errors))
    }
}

/// Path parameters (axum's `Path`); a NUL in the path is a 400.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        // A URI cannot hold a raw NUL: only its percent-encoded form decodes to one.
        if parts.uri.path().contains("%00") {
            return Err(ApiError::BadRequest {
                detail: "invalid path".into(),
                errors: vec![FieldError::new("path", NUL_MESSAGE)],
            });
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn problem(result: Result<Body, ApiError>) -> (String, Vec<FieldError>) {
        match result.unwrap_err() {
            ApiError::BadRequest { detail, errors }
            | ApiError::Unprocessable { detail, errors } => (detail, errors),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_json_names_the_position() {
        let (detail, _) = problem(parse_json(b"{\n  \"name\": }"));
        assert!(
            detail.starts_with("malformed JSON at line 2 column 11"),
            "{detail}"
        );
        let (detail, _) = problem(parse_json(b"{\"name\": \"a\"} trailing"));
        assert!(detail.contains("line 1"), "{detail}");
    }

    #[test]
    fn a_nul_anywhere_in_a_body_names_its_field() {
        let (_, errors) = problem(parse_json(br#"{"name": "a\u0000b"}"#));
        assert_eq!(errors[0].field, "name");
        assert!(errors[0].message.contains("NUL"));
        let value =
            serde_json::json!({"values": {"list": [1, {"x": "\0"}]}, "labels": {"k\0": "v"}});
        assert_eq!(nul_field(&value, "").as_deref(), Some("labels"));
        let value = serde_json::json!({"values": {"list": [1, {"x": "\0"}]}});
        assert_eq!(nul_field(&value, "").as_deref(), Some("values.list[1].x"));
        // An escaped backslash before `u0000` is no NUL.
        assert!(parse_json::<Body>(br#"{"name": "a\\u0000"}"#).is_ok());
    }

    /// serde would take `[1]` as `Inner { count: 1 }`; the document says object.
    #[test]
    fn an_array_where_the_schema_wants_an_object_names_its_field() {
        assert!(parse_json::<Body>(br#"{"name": "a", "inner": [1]}"#).is_ok());
        let (_, errors) = problem(parse_request(br#"{"name": "a", "inner": [1]}"#));
        assert_eq!(errors[0].field, "inner");
        assert_eq!(errors[0].message, "must be an object, not an array");
        let (_, errors) = problem(parse_request(br#"["a", null]"#));
        assert_eq!(errors[0].field, "");
        assert!(parse_request::<Body>(br#"{"name": "[a]", "inner": {"count": 1}}"#).is_ok());
    }

    #[test]
    fn wrong_shapes_name_the_field_path() {
        let (_, errors) = problem(parse_json(br#"{"name": "a", "inner": {"count": "x"}}"#));
        assert_eq!(errors[0].field, "inner.count");
        let (_, errors) = problem(parse_json(br#"{"name": "a", "extra": 1}"#));
        assert_eq!(errors[0].field, "extra");
        assert!(errors[0].message.contains("unknown field `extra`"));
        let (_, errors) = problem(parse_json(br#"{"inner": {"count": 1}}"#));
        assert_eq!(errors[0].field, "name");
    }
}
