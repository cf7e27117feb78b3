//! Domain types: requests parsed once into values that cannot be invalid, the deploy state machine,
//! the event and verdict vocabularies and the authorization model.

pub mod auth;
pub mod chart;
pub mod chart_allowlist;
pub mod deploy;
pub mod duration;
pub mod event;
pub mod firehose;
pub mod glob;
pub mod labels;
pub mod names;
pub mod notify;
pub mod policy;
pub mod public_url;
pub mod redaction;
pub mod release;
pub mod sealing;
pub mod storable;
pub mod verdict;
pub mod webhooks;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One invalid field of a request, named by its JSON path (`chart.path`, `tracking.resources[0].kind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error placed under a parent path (`name` → `chart.name`).
    pub fn under(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_owned()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

/// Collects every field error of a request so that a client learns all of them at once.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Keeps the value of a successful parse, records the error of a failed one.
    pub fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(error);
                None
            }
        }
    }

    /// Like [`FieldErrors::take`] for parsers that report several errors.
    pub fn take_all<T>(&mut self, result: Result<T, Vec<FieldError>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(errors) => {
                self.0.extend(errors);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}
