//! Pages of the list endpoints: the `limit` query parameter's bounds and default, the 400 problem
//! naming `limit` when a request asks for more (or less) than a page may hold, and the cursors of
//! keyset pagination over UUIDv7 ids (newest first).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use uuid::Uuid;

use super::error::ApiError;
use crate::domain::FieldError;

/// The `limit` of one list endpoint: from 1 to `max`, `default` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize {
    pub default: i64,
    pub max: i64,
}

/// `GET /v1/deploys`.
pub const DEPLOYS: PageSize = PageSize {
    default: 50,
    max: 200,
};

/// `GET /v1/deploys/{id}/events` as JSON pages.
pub const DEPLOY_EVENTS: PageSize = PageSize {
    default: 100,
    max: 1000,
};

/// `GET /v1/releases/{namespace}/{release}`: how much of the history.
pub const RELEASE_HISTORY: PageSize = PageSize {
    default: 20,
    max: 200,
};

/// The most JSON one page of a list holds: a page that would be larger ends early, and its
/// cursor continues after the last item it shows.
pub const MAX_PAGE_BYTES: usize = 1024 * 1024;

/// Keeps the longest prefix of `items` whose JSON fits in `max_bytes` (at least one item, so that
/// paging always moves on); true when items were cut.
fn fit_bytes<T: Serialize>(items: &mut Vec<T>, max_bytes: usize) -> bool {
    let mut total = 0;
    let fitting = items
        .iter()
        .take_while(|item| {
            total += serde_json::to_vec(item).map_or(0, |json| json.len() + 1);
            total <= max_bytes
        })
        .count()
        .max(1);
    let cut = fitting < items.len();
    items.truncate(fitting);
    cut
}

/// `GET /v1/hooks/{name}/deliveries`.
pub const HOOK_DELIVERIES: PageSize = PageSize {
    default: 50,
    max: 200,
};

/// The cursor of the page after the item with this id.
pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// The id a cursor of [`encode_cursor`] carries, or the error naming `cursor`.
pub fn parse_cursor(cursor: &str) -> Result<Uuid, FieldError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| Uuid::from_slice(&bytes).ok())
        .ok_or_else(|| FieldError::new("cursor", "is not a cursor returned by this API"))
}

/// Cuts `items`, fetched newest first with one more than `limit`, to a page (of at most
/// [`MAX_PAGE_BYTES`]), and returns the cursor of the next (older) page, if there is one.
pub fn cut<T: Serialize>(
    items: &mut Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> Uuid,
) -> Option<String> {
    let more = items.len() as i64 > limit;
    items.truncate(limit.max(0) as usize);
    let too_large = fit_bytes(items, MAX_PAGE_BYTES);
    if more || too_large {
        items.last().map(|last| encode_cursor(id(last)))
    } else {
        None
    }
}

impl PageSize {
    /// The page size of a typed query's `limit`; out of bounds, the whole request is refused.
    pub fn limit(self, requested: Option<i64>) -> Result<i64, ApiError> {
        match requested {
            None => Ok(self.default),
            Some(limit) if self.allows(limit) => Ok(limit),
            Some(_) => Err(ApiError::invalid_query(vec![self.invalid()])),
        }
    }

    /// The page size of a `limit` read from the query text, for queries read pair by pair whose
    /// errors are collected.
    pub fn parse(self, text: &str) -> Result<i64, FieldError> {
        text.parse()
            .ok()
            .filter(|limit| self.allows(*limit))
            .ok_or_else(|| self.invalid())
    }

    fn allows(self, limit: i64) -> bool {
        (1..=self.max).contains(&limit)
    }

    fn invalid(self) -> FieldError {
        FieldError::new(
            "limit",
            format!("must be an integer from 1 to {}", self.max),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_before_their_byte_limit_but_never_empty() {
        let mut items = vec!["x".repeat(10); 5];
        // Each item is 12 bytes of JSON plus a separator.
        assert!(fit_bytes(&mut items, 40));
        assert_eq!(items.len(), 3);
        assert!(!fit_bytes(&mut items, 39));
        assert_eq!(items.len(), 3);
        let mut huge = vec!["x".repeat(100)];
        assert!(!fit_bytes(&mut huge, 10));
        assert_eq!(huge.len(), 1, "one item even when it alone is larger");
    }

    #[test]
    fn limits_default_and_stay_in_bounds() {
        assert_eq!(DEPLOYS.limit(None).unwrap(), 50);
        assert_eq!(DEPLOYS.limit(Some(200)).unwrap(), 200);
        assert_eq!(DEPLOYS.parse("1"), Ok(1));
        for bad in ["0", "201", "-1", "ten", ""] {
            let error = DEPLOYS.parse(bad).unwrap_err();
            assert_eq!(error.field, "limit");
            assert_eq!(error.message, "must be an integer from 1 to 200");
        }
        let ApiError::BadRequest { errors, .. } = DEPLOY_EVENTS.limit(Some(1001)).unwrap_err()
        else {
            panic!("an out-of-bounds limit is a 400");
        };
        assert_eq!(errors[0].field, "limit");
    }

    /// The documented bounds are prose in the handlers' annotations; they must say what these say.
    #[test]
    fn the_openapi_document_states_each_page_size() {
        let document = serde_json::to_value(crate::http::openapi()).expect("JSON");
        for (path, size) in [
            ("/v1/deploys", DEPLOYS),
            ("/v1/deploys/{id}/events", DEPLOY_EVENTS),
            ("/v1/releases/{namespace}/{release}", RELEASE_HISTORY),
            ("/v1/hooks/{name}/deliveries", HOOK_DELIVERIES),
        ] {
            let parameters = document["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap_or_else(|| panic!("{path} has parameters"));
            let limit = parameters
                .iter()
                .find(|parameter| parameter["name"] == "limit")
                .unwrap_or_else(|| panic!("{path} takes a limit"));
            let description = limit["description"].as_str().unwrap_or_default();
            let stated = format!("1 to {} (default {})", size.max, size.default);
            assert!(description.contains(&stated), "{path}: {description:?}");
        }
    }
}
