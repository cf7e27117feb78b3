//! The server's public base URL (`ROLLCALL_PUBLIC_URL`): links in notifications, the CLI and `/ui`
//! are made from it, so it is checked once, at start-up.

use std::fmt;

/// An `http` or `https` URL without query or fragment, kept without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim().trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or_else(|| format!("public URL {text:?} must start with http:// or https://"))?;
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || rest.contains(['?', '#']) || rest.chars().any(char::is_whitespace) {
            return Err(format!(
                "public URL {text:?} must name a host and have no query, fragment or spaces"
            ));
        }
        Ok(PublicUrl(trimmed.to_owned()))
    }

    /// The absolute URL of `path` (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_url_is_an_http_base_without_trailing_slash() {
        let url = PublicUrl::parse("https://rollcall.example.com/base/").unwrap();
        assert_eq!(
            url.join("/v1/deploys/1"),
            "https://rollcall.example.com/base/v1/deploys/1"
        );
        for bad in [
            "rollcall.example.com",
            "ftp://x",
            "https://",
            "https://x/?a=1",
            "http://a b",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
