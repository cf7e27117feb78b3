//! Where repository and OCI charts may come from: only the repositories and registries the server
//! is configured with (DESIGN §6.4), so that a deploy cannot make helm fetch from an arbitrary
//! address (an internal service, the cloud metadata endpoint).
//!
//! A chart location is parsed once into a canonical form (lowercase scheme and host, default port
//! dropped, IP literals normalized) and matched by scheme, host, port and whole path segments.
//! Whatever two URL parsers could read two ways is refused rather than interpreted: credentials
//! before the host (`user@host`), percent-encoding, `.`/`..` segments, a query or a fragment,
//! backslashes, whitespace, non-ASCII. helm is given the canonical form, never the client's text.

use std::fmt;

use serde::Deserialize;

use super::FieldError;

/// Longest chart location accepted.
const MAX_LOCATION: usize = 2048;

/// The configured repositories and registries, checked.
#[derive(Debug, Clone, Default)]
pub struct ChartAllowList {
    repositories: Vec<AllowedRepository>,
    registries: Vec<AllowedRegistry>,
}

/// A chart repository charts may come from: every repository URL at or below `url`.
#[derive(Debug, Clone)]
pub struct AllowedRepository {
    pub url: RepositoryUrl,
    pub credentials: Option<ChartCredentials>,
}

/// An OCI registry (and path prefix) charts may come from.
#[derive(Debug, Clone)]
pub struct AllowedRegistry {
    pub prefix: OciLocation,
    /// Speaks plain HTTP (helm `--plain-http`): a registry on a trusted local network.
    pub plain_http: bool,
    pub credentials: Option<ChartCredentials>,
}

/// Basic-auth credentials of a private repository or registry. The password is never printed.
#[derive(Clone)]
pub struct ChartCredentials {
    pub username: String,
    password: String,
}

impl ChartCredentials {
    pub fn new(username: String, password: String) -> Self {
        Self { username, password }
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for ChartCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChartCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// `[charts]` of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartsSection {
    /// `[[charts.repositories]]`
    #[serde(default)]
    pub repositories: Vec<RepositorySpec>,
    /// `[[charts.registries]]`
    #[serde(default)]
    pub registries: Vec<RegistrySpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositorySpec {
    /// `https://host[:port][/path]`: charts of this repository and of repositories below it.
    pub url: String,
    /// Allows an `http://` URL: a repository on a trusted local network.
    #[serde(default)]
    pub allow_http: bool,
    pub credentials: Option<CredentialsSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySpec {
    /// `host[:port][/path]`: OCI charts under it (`oci://host[:port]/path/chart`).
    pub prefix: String,
    #[serde(default)]
    pub plain_http: bool,
    pub credentials: Option<CredentialsSpec>,
}

/// A username, and where its password is read from: an environment variable or a file, never the
/// configuration file itself.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSpec {
    pub username: String,
    /// Refused: present only to say so clearly.
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

/// Where a password is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(String),
}

impl CredentialsSpec {
    fn source(&self) -> Result<PasswordSource, FieldError> {
        match (&self.password, &self.password_env, &self.password_file) {
            (Some(_), _, _) => Err(FieldError::new(
                "credentials.password",
                "is never written in the configuration file: use password_env or password_file",
            )),
            (None, Some(variable), None) => Ok(PasswordSource::Env(variable.clone())),
            (None, None, Some(path)) => Ok(PasswordSource::File(path.clone())),
            (None, _, _) => Err(FieldError::new(
                "credentials.password_env",
                "give exactly one of password_env and password_file",
            )),
        }
    }

    fn read(
        &self,
        read_password: &impl Fn(&PasswordSource) -> Result<String, String>,
    ) -> Result<ChartCredentials, FieldError> {
        let source = self.source()?;
        let field = match source {
            PasswordSource::Env(_) => "credentials.password_env",
            PasswordSource::File(_) => "credentials.password_file",
        };
        let password = read_password(&source).map_err(|message| FieldError::new(field, message))?;
        if self.username.is_empty() || password.is_empty() {
            return Err(FieldError::new(
                "credentials",
                "needs a non-empty username and password",
            ));
        }
        Ok(ChartCredentials::new(self.username.clone(), password))
    }
}

impl ChartAllowList {
    /// Checks `[charts]`, reading passwords with `read_password`; errors name the entry and field
    /// (`charts.repositories[0].url`).
    pub fn from_section(
        section: ChartsSection,
        read_password: impl Fn(&PasswordSource) -> Result<String, String>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut allowed = ChartAllowList::default();
        for (index, spec) in section.repositories.into_iter().enumerate() {
            let at = |error: FieldError| error.under(&format!("charts.repositories[{index}]"));
            let url = RepositoryUrl::parse(&spec.url)
                .and_then(|url| {
                    match url.scheme {
                    Scheme::Http if !spec.allow_http => Err(
                        "is plain http: set allow_http = true for a repository on a trusted network"
                            .to_owned(),
                    ),
                    _ => Ok(url),
                }
                })
                .map_err(|message| at(FieldError::new("url", message)));
            let credentials = spec
                .credentials
                .map(|credentials| credentials.read(&read_password).map_err(at))
                .transpose();
            match (url, credentials) {
                (Ok(url), Ok(credentials)) => allowed
                    .repositories
                    .push(AllowedRepository { url, credentials }),
                (url, credentials) => errors.extend(url.err().into_iter().chain(credentials.err())),
            }
        }
        for (index, spec) in section.registries.into_iter().enumerate() {
            let at = |error: FieldError| error.under(&format!("charts.registries[{index}]"));
            let prefix =
                OciLocation::parse(spec.prefix.strip_prefix("oci://").unwrap_or(&spec.prefix))
                    .map_err(|message| at(FieldError::new("prefix", message)));
            let credentials = spec
                .credentials
                .map(|credentials| credentials.read(&read_password).map_err(at))
                .transpose();
            match (prefix, credentials) {
                (Ok(prefix), Ok(credentials)) => allowed.registries.push(AllowedRegistry {
                    prefix,
                    plain_http: spec.plain_http,
                    credentials,
                }),
                (prefix, credentials) => {
                    errors.extend(prefix.err().into_iter().chain(credentials.err()))
                }
            }
        }
        if errors.is_empty() {
            Ok(allowed)
        } else {
            Err(errors)
        }
    }

    /// Allows what `other` allows too.
    pub fn extend(&mut self, other: ChartAllowList) {
        self.repositories.extend(other.repositories);
        self.registries.extend(other.registries);
    }

    /// Allows every chart repository at or below `url` (https), without credentials.
    pub fn allow_repository(&mut self, url: RepositoryUrl) {
        self.repositories.push(AllowedRepository {
            url,
            credentials: None,
        });
    }

    /// Allows OCI charts below `prefix`, over https, without credentials.
    pub fn allow_registry(&mut self, prefix: OciLocation) {
        self.registries.push(AllowedRegistry {
            prefix,
            plain_http: false,
            credentials: None,
        });
    }

    /// The repository URL in canonical form and the configured repository it lies in (the most
    /// specific one), or why it may not be used.
    pub fn repository(&self, text: &str) -> Result<(RepositoryUrl, &AllowedRepository), String> {
        let url = RepositoryUrl::parse(text)?;
        self.repositories
            .iter()
            .filter(|allowed| url.is_within(&allowed.url))
            .max_by_key(|allowed| allowed.url.path.len())
            .map(|allowed| (url.clone(), allowed))
            .ok_or_else(|| {
                "is not a chart repository this server allows (its [charts] repositories)"
                    .to_owned()
            })
    }

    /// The OCI chart reference in canonical form and the configured registry it lies in (the
    /// most specific one), or why it may not be used.
    pub fn registry(&self, text: &str) -> Result<(OciLocation, &AllowedRegistry), String> {
        let reference = text
            .strip_prefix("oci://")
            .ok_or_else(|| "must start with oci://".to_owned())
            .and_then(OciLocation::parse)?;
        self.registries
            .iter()
            .filter(|allowed| reference.is_chart_below(&allowed.prefix))
            .max_by_key(|allowed| allowed.prefix.path.len())
            .map(|allowed| (reference.clone(), allowed))
            .ok_or_else(|| {
                "is not in an OCI registry this server allows (its [charts] registries)".to_owned()
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

/// A chart repository URL in canonical form: `scheme://host[:port][/segment...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryUrl {
    pub scheme: Scheme,
    host: Host,
    path: Vec<String>,
}

/// A registry host with its path segments: `host[:port]/segment/...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciLocation {
    host: Host,
    path: Vec<String>,
}

/// A lowercase host name or normalized IP literal, and a port unless it is the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    name: String,
    port: Option<u16>,
}

impl RepositoryUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        const SHAPE: &str = "must be an https:// URL of a chart repository";
        refuse_ambiguous(text)?;
        let lowercase = text.to_ascii_lowercase();
        let (scheme, rest) = if lowercase.starts_with("https://") {
            (Scheme::Https, &text["https://".len()..])
        } else if lowercase.starts_with("http://") {
            (Scheme::Http, &text["http://".len()..])
        } else {
            return Err(SHAPE.into());
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let scheme_name = match scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        Ok(RepositoryUrl {
            scheme,
            host: Host::parse(scheme_name, authority)?,
            path: segments(path)?,
        })
    }

    /// Whether this URL is `prefix` or a repository below it.
    fn is_within(&self, prefix: &RepositoryUrl) -> bool {
        self.scheme == prefix.scheme
            && self.host == prefix.host
            && self.path.starts_with(&prefix.path)
    }
}

impl fmt::Display for RepositoryUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        write!(f, "{scheme}://{}", self.host)?;
        self.path
            .iter()
            .try_for_each(|segment| write!(f, "/{segment}"))
    }
}

impl OciLocation {
    /// `host[:port][/path]` (without `oci://`); path segments in OCI's lowercase alphabet.
    pub fn parse(text: &str) -> Result<Self, String> {
        refuse_ambiguous(text)?;
        let (authority, path) = text.split_once('/').unwrap_or((text, ""));
        let path = segments(path)?;
        let valid_segment = |segment: &String| {
            segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && segment.starts_with(|c: char| c.is_ascii_alphanumeric())
                && segment.ends_with(|c: char| c.is_ascii_alphanumeric())
        };
        if !path.iter().all(valid_segment) {
            return Err(
                "path segments must be lowercase letters and digits, separated by '.', '_' or '-'"
                    .into(),
            );
        }
        Ok(OciLocation {
            host: Host::parse("https", authority)?,
            path,
        })
    }

    /// The registry `host[:port]`, as registry credentials are keyed.
    pub fn registry(&self) -> String {
        self.host.to_string()
    }

    /// Whether this is a chart (at least one more segment) below `prefix`.
    fn is_chart_below(&self, prefix: &OciLocation) -> bool {
        self.host == prefix.host
            && self.path.len() > prefix.path.len()
            && self.path.starts_with(&prefix.path)
    }
}

impl fmt::Display for OciLocation {
    /// `oci://host[:port]/path`, as helm takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}", self.host)?;
        self.path
            .iter()
            .try_for_each(|segment| write!(f, "/{segment}"))
    }
}

impl Host {
    /// `authority` read as a `scheme` URL's host and port would be, normalized.
    fn parse(scheme: &str, authority: &str) -> Result<Self, String> {
        if authority.is_empty() {
            return Err("needs a host".into());
        }
        let url = url::Url::parse(&format!("{scheme}://{authority}/"))
            .map_err(|error| format!("has an invalid host or port: {error}"))?;
        let name = match url.host() {
            Some(url::Host::Domain(domain)) => domain.trim_end_matches('.').to_owned(),
            Some(url::Host::Ipv4(address)) => address.to_string(),
            Some(url::Host::Ipv6(address)) => format!("[{address}]"),
            None => return Err("needs a host".into()),
        };
        if name.is_empty() {
            return Err("needs a host".into());
        }
        Ok(Host {
            name,
            port: url.port(),
        })
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.port {
            Some(port) => write!(f, "{}:{port}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Refuses what parsers disagree on or what has no place in a chart location.
fn refuse_ambiguous(text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > MAX_LOCATION {
        return Err(format!("must be 1 to {MAX_LOCATION} characters"));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces (IDN hosts in punycode)".into());
    }
    for (character, what) in [
        (
            '@',
            "credentials before the host: configure them on the server",
        ),
        ('%', "percent-encoding"),
        ('\\', "backslashes"),
        ('?', "a query"),
        ('#', "a fragment"),
    ] {
        if text.contains(character) {
            return Err(format!("must not contain {what}"));
        }
    }
    Ok(())
}

/// The path's segments; empty ones (doubled or trailing slashes) are dropped, dot segments refused.
fn segments(path: &str) -> Result<Vec<String>, String> {
    let segments: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(str::to_owned)
        .collect();
    if segments
        .iter()
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("must not contain '.' or '..' path segments".into());
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow_list() -> ChartAllowList {
        let mut allowed = ChartAllowList::default();
        allowed.allow_repository(RepositoryUrl::parse("https://charts.example.com").unwrap());
        allowed.allow_repository(RepositoryUrl::parse("https://mirror.example.com/helm/").unwrap());
        allowed.allow_registry(OciLocation::parse("registry.example/charts").unwrap());
        allowed
    }

    fn canonical_repository(text: &str) -> Result<String, String> {
        allow_list()
            .repository(text)
            .map(|(url, _)| url.to_string())
    }

    #[test]
    fn repositories_match_by_scheme_host_port_and_whole_segments() {
        for (given, canonical) in [
            ("https://charts.example.com", "https://charts.example.com"),
            ("https://charts.example.com/", "https://charts.example.com"),
            ("HTTPS://Charts.EXAMPLE.com", "https://charts.example.com"),
            ("https://charts.example.com.", "https://charts.example.com"),
            (
                "https://charts.example.com:443/stable",
                "https://charts.example.com/stable",
            ),
            (
                "https://charts.example.com//stable//",
                "https://charts.example.com/stable",
            ),
            (
                "https://mirror.example.com/helm",
                "https://mirror.example.com/helm",
            ),
            (
                "https://mirror.example.com/helm/stable",
                "https://mirror.example.com/helm/stable",
            ),
        ] {
            assert_eq!(
                canonical_repository(given).as_deref(),
                Ok(canonical),
                "{given}"
            );
        }
        for refused in [
            "http://charts.example.com",
            "https://charts.example.com:8443",
            "https://charts.example.com.evil.test",
            "https://evil.test/?https://charts.example.com",
            "https://evil.test/https://charts.example.com",
            "https://charts.example.com@evil.test",
            "https://user:pass@charts.example.com",
            "https://charts.example.com%2eevil.test",
            "https://charts.example.com\\@evil.test",
            "https://charts.example.com/../../evil",
            "https://mirror.example.com/helm/../admin",
            "https://mirror.example.com/helmet",
            "https://mirror.example.com",
            "https://127.0.0.1",
            "https://0x7f.1",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]",
            "https://10.0.0.8",
            "https://internal.corp",
            "https://charts.example.com#frag",
            "https://charts.example.com /x",
            "https://chärts.example.com",
            "ftp://charts.example.com",
            "charts.example.com",
            "https://",
        ] {
            assert!(canonical_repository(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn ip_literals_are_normalized_before_they_are_compared() {
        let mut allowed = ChartAllowList::default();
        allowed.allow_repository(RepositoryUrl::parse("http://127.0.0.1:8080").unwrap());
        let (url, _) = allowed.repository("http://2130706433:8080/charts").unwrap();
        assert_eq!(url.to_string(), "http://127.0.0.1:8080/charts");
        assert!(allowed.repository("http://127.0.0.1:8081").is_err());
        assert!(allowed.repository("http://127.0.0.1").is_err());
    }

    #[test]
    fn oci_charts_lie_below_an_allowed_registry_prefix() {
        let allowed = allow_list();
        let (reference, registry) = allowed
            .registry("oci://Registry.Example/charts/team/api")
            .unwrap();
        assert_eq!(
            reference.to_string(),
            "oci://registry.example/charts/team/api"
        );
        assert_eq!(registry.prefix.registry(), "registry.example");
        for refused in [
            "oci://registry.example/charts",
            "oci://registry.example/chartsx/api",
            "oci://registry.example:5000/charts/api",
            "oci://registry.example.evil.test/charts/api",
            "oci://evil.test/registry.example/charts/api",
            "oci://user@registry.example/charts/api",
            "oci://registry.example/charts/../api",
            "oci://registry.example/charts/API",
            "oci://169.254.169.254/charts/api",
            "oci://[::1]/charts/api",
            "https://registry.example/charts/api",
        ] {
            assert!(allowed.registry(refused).is_err(), "{refused}");
        }
    }

    fn section(text: &str) -> ChartsSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn configured_entries_are_checked_and_passwords_read_from_their_source() {
        let read = |source: &PasswordSource| match source {
            PasswordSource::Env(name) if name == "CHARTS_PASSWORD" => Ok("s3cret".to_owned()),
            PasswordSource::Env(name) => Err(format!("the environment variable {name} is not set")),
            PasswordSource::File(path) => Err(format!("cannot read {path}")),
        };
        let allowed = ChartAllowList::from_section(
            section(
                r#"
                [[repositories]]
                url = "https://charts.internal.example/private"
                credentials = { username = "deployer", password_env = "CHARTS_PASSWORD" }
                [[registries]]
                prefix = "oci://localhost:5000/charts"
                plain_http = true
                "#,
            ),
            read,
        )
        .unwrap();
        let (_, repository) = allowed
            .repository("https://charts.internal.example/private/stable")
            .unwrap();
        let credentials = repository.credentials.as_ref().unwrap();
        assert_eq!(
            (credentials.username.as_str(), credentials.password()),
            ("deployer", "s3cret")
        );
        assert!(
            !format!("{allowed:?}").contains("s3cret"),
            "Debug never shows a password"
        );
        assert!(
            allowed
                .registry("oci://localhost:5000/charts/web")
                .unwrap()
                .1
                .plain_http
        );

        let errors = ChartAllowList::from_section(
            section(
                r#"
                [[repositories]]
                url = "http://charts.internal.example"
                [[repositories]]
                url = "https://ok.example"
                credentials = { username = "u", password = "in the file" }
                [[registries]]
                prefix = "registry.example/charts"
                credentials = { username = "u", password_file = "/missing" }
                "#,
            ),
            read,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|error| error.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "charts.repositories[0].url",
                "charts.repositories[1].credentials.password",
                "charts.registries[0].credentials.password_file",
            ]
        );
        assert!(
            errors[0].message.contains("allow_http"),
            "{}",
            errors[0].message
        );
    }
}
