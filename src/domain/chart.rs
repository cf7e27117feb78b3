//! Where a deploy's chart comes from: exactly one of a catalog path, a repository chart or an OCI
//! reference, the last two only from the repositories and registries the server allows.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;
use super::chart_allowlist::ChartAllowList;

/// The chart: exactly one of `path` (the server's catalog), `repo` with `name` and `version`, or
/// `oci` with `version`. Repository and OCI charts come only from the repositories and registries
/// the server is configured to allow; any other is refused with 422 naming `chart.repo` or
/// `chart.oci`, before anything is fetched.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    /// A chart directory or archive relative to the server's chart catalog.
    pub path: Option<String>,
    /// A chart repository URL (`https://...`) at or below one of the repositories the server is
    /// configured to allow (`[charts] repositories`); needs `name` and `version`. Kept in canonical
    /// form (lowercase host, no default port or trailing slash).
    pub repo: Option<String>,
    /// The chart name in `repo`.
    pub name: Option<String>,
    /// An OCI reference (`oci://registry/path/chart`) below one of the registries the server is
    /// configured to allow (`[charts] registries`); needs `version`.
    pub oci: Option<String>,
    /// The chart version for `repo` and `oci` charts.
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChartSource {
    /// A relative path inside the chart catalog.
    Path {
        path: String,
    },
    Repo {
        repo: String,
        name: String,
        version: String,
    },
    Oci {
        oci: String,
        version: String,
    },
}

/// The server's chart catalog directory, if one is configured.
#[derive(Debug, Clone, Default)]
pub struct ChartCatalog {
    root: Option<PathBuf>,
}

impl ChartCatalog {
    pub fn new(root: Option<PathBuf>) -> Self {
        Self { root }
    }

    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// The absolute location of a catalog chart, checked to exist inside the catalog (symlinks
    /// resolved), or why not.
    pub fn resolve(&self, relative: &str) -> Result<Option<PathBuf>, String> {
        let Some(root) = &self.root else {
            return Ok(None);
        };
        let root = root
            .canonicalize()
            .map_err(|error| format!("the server's chart catalog is unavailable: {error}"))?;
        let resolved = root
            .join(relative)
            .canonicalize()
            .map_err(|_| format!("no chart {relative:?} in the chart catalog"))?;
        if !resolved.starts_with(&root) {
            return Err("must stay inside the chart catalog".into());
        }
        Ok(Some(resolved))
    }
}

/// Where the server takes charts from: its catalog, and the repositories and registries it allows.
#[derive(Debug, Clone, Default)]
pub struct ChartSources {
    pub catalog: ChartCatalog,
    pub allowed: ChartAllowList,
}

impl ChartSource {
    /// Checks the spec; a repository or registry outside the allowed ones is refused here, before
    /// anything runs or is written.
    pub fn parse(spec: ChartSpec, sources: &ChartSources) -> Result<Self, Vec<FieldError>> {
        let catalog = &sources.catalog;
        let field = |name: &str| format!("chart.{name}");
        match spec {
            ChartSpec {
                path: Some(path),
                repo: None,
                name: None,
                oci: None,
                version: None,
            } => {
                check_relative_path(&path).map_err(|m| vec![FieldError::new(field("path"), m)])?;
                catalog
                    .resolve(&path)
                    .map_err(|m| vec![FieldError::new(field("path"), m)])?;
                Ok(ChartSource::Path { path })
            }
            ChartSpec {
                path: None,
                repo: Some(repo),
                name,
                oci: None,
                version,
            } => {
                let mut errors = Vec::new();
                let repo = match sources.allowed.repository(&repo) {
                    Ok((url, _)) => Some(url.to_string()),
                    Err(message) => {
                        errors.push(FieldError::new(field("repo"), message));
                        None
                    }
                };
                let name = require(name, &field("name"), check_chart_name, &mut errors);
                let version = require(version, &field("version"), check_version, &mut errors);
                match (repo, name, version) {
                    (Some(repo), Some(name), Some(version)) if errors.is_empty() => {
                        Ok(ChartSource::Repo {
                            repo,
                            name,
                            version,
                        })
                    }
                    _ => Err(errors),
                }
            }
            ChartSpec {
                path: None,
                repo: None,
                name: None,
                oci: Some(oci),
                version,
            } => {
                let mut errors = Vec::new();
                // The chart's last segment, past the registry's `host:port`.
                let tagged = oci
                    .strip_prefix("oci://")
                    .and_then(|reference| reference.split_once('/'))
                    .is_some_and(|(_, path)| path.rsplit('/').next().unwrap_or(path).contains(':'));
                let oci = if tagged {
                    errors.push(FieldError::new(
                        field("oci"),
                        "must be an OCI reference oci://registry/path/chart without a tag (give the version separately)",
                    ));
                    None
                } else {
                    match sources.allowed.registry(&oci) {
                        Ok((reference, _)) => Some(reference.to_string()),
                        Err(message) => {
                            errors.push(FieldError::new(field("oci"), message));
                            None
                        }
                    }
                };
                let version = require(version, &field("version"), check_version, &mut errors);
                match (oci, version) {
                    (Some(oci), Some(version)) if errors.is_empty() => {
                        Ok(ChartSource::Oci { oci, version })
                    }
                    _ => Err(errors),
                }
            }
            ChartSpec {
                path: None,
                repo: None,
                oci: None,
                ..
            } => Err(vec![FieldError::new(
                "chart",
                "must give one of path, repo (with name and version) or oci (with version)",
            )]),
            _ => Err(vec![FieldError::new(
                "chart",
                "path, repo and oci are exclusive: give exactly one (name only with repo, version only with repo or oci)",
            )]),
        }
    }
}

fn require(
    value: Option<String>,
    field: &str,
    check: fn(&str) -> Result<(), String>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match value {
        None => {
            errors.push(FieldError::new(field, "is required"));
            None
        }
        Some(value) => match check(&value) {
            Ok(()) => Some(value),
            Err(message) => {
                errors.push(FieldError::new(field, message));
                None
            }
        },
    }
}

fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 1024 {
        return Err("must be a non-empty relative path".into());
    }
    let path = Path::new(path);
    if path.is_absolute() {
        return Err("must be relative to the chart catalog".into());
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("must not contain '..'".into());
    }
    Ok(())
}

fn check_chart_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 250
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err("must be a chart name of letters, digits, '-', '_', '.'".into())
    }
}

fn check_version(version: &str) -> Result<(), String> {
    let valid = !version.is_empty()
        && version.len() <= 128
        && version.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_'
                        | b'.'
                        | b'+'
                        | b'^'
                        | b'~'
                        | b'*'
                        | b'<'
                        | b'>'
                        | b'='
                        | b' '
                        | b','
                )
        });
    if valid {
        Ok(())
    } else {
        Err("must be a chart version or semver constraint".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        path: Option<&str>,
        repo: Option<&str>,
        name: Option<&str>,
        oci: Option<&str>,
        version: Option<&str>,
    ) -> ChartSpec {
        ChartSpec {
            path: path.map(Into::into),
            repo: repo.map(Into::into),
            name: name.map(Into::into),
            oci: oci.map(Into::into),
            version: version.map(Into::into),
        }
    }

    /// Sources allowing `https://charts.example` and `ghcr.io/acme`.
    fn allowing_examples() -> ChartSources {
        use crate::domain::chart_allowlist::{OciLocation, RepositoryUrl};
        let mut sources = ChartSources::default();
        sources
            .allowed
            .allow_repository(RepositoryUrl::parse("https://charts.example").unwrap());
        sources
            .allowed
            .allow_registry(OciLocation::parse("ghcr.io/acme").unwrap());
        sources
    }

    #[test]
    fn exactly_one_source() {
        let sources = allowing_examples();
        assert!(matches!(
            ChartSource::parse(spec(Some("web"), None, None, None, None), &sources),
            Ok(ChartSource::Path { .. })
        ));
        let repo = spec(
            None,
            Some("HTTPS://Charts.Example/"),
            Some("web"),
            None,
            Some("1.2.3"),
        );
        assert_eq!(
            ChartSource::parse(repo, &sources),
            Ok(ChartSource::Repo {
                repo: "https://charts.example".into(),
                name: "web".into(),
                version: "1.2.3".into(),
            }),
            "kept in canonical form"
        );
        assert!(matches!(
            ChartSource::parse(
                spec(
                    None,
                    None,
                    None,
                    Some("oci://ghcr.io/acme/web"),
                    Some("1.2.3")
                ),
                &sources
            ),
            Ok(ChartSource::Oci { .. })
        ));
        let errors = ChartSource::parse(
            spec(Some("web"), Some("https://x"), None, None, None),
            &sources,
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "chart");
        let errors = ChartSource::parse(
            spec(None, Some("https://charts.example"), None, None, None),
            &sources,
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["chart.name", "chart.version"]);
    }

    #[test]
    fn repositories_and_registries_outside_the_allowed_ones_are_refused() {
        let sources = allowing_examples();
        let errors = ChartSource::parse(
            spec(
                None,
                Some("http://169.254.169.254/latest"),
                Some("web"),
                None,
                Some("1.0.0"),
            ),
            &sources,
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "chart.repo");
        let errors = ChartSource::parse(
            spec(
                None,
                None,
                None,
                Some("oci://10.0.0.1/acme/web"),
                Some("1.0.0"),
            ),
            &sources,
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "chart.oci");
        let errors = ChartSource::parse(
            spec(
                None,
                None,
                None,
                Some("oci://ghcr.io/acme/web:1.0.0"),
                Some("1.0.0"),
            ),
            &sources,
        )
        .unwrap_err();
        assert!(errors[0].message.contains("without a tag"), "{errors:?}");
        // Nothing is allowed unless configured.
        let errors = ChartSource::parse(
            spec(
                None,
                Some("https://charts.example"),
                Some("web"),
                None,
                Some("1"),
            ),
            &ChartSources::default(),
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "chart.repo");
    }

    #[test]
    fn paths_stay_inside_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("web")).unwrap();
        let catalog = ChartSources {
            catalog: ChartCatalog::new(Some(dir.path().to_owned())),
            ..ChartSources::default()
        };
        assert!(ChartSource::parse(spec(Some("web"), None, None, None, None), &catalog).is_ok());
        for bad in ["../etc", "/etc", "web/../../x", "missing"] {
            let errors =
                ChartSource::parse(spec(Some(bad), None, None, None, None), &catalog).unwrap_err();
            assert_eq!(errors[0].field, "chart.path", "{bad}");
        }
    }
}
