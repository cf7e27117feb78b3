//! Where a deploy's chart comes from: exactly one of a catalog path, a repository chart or an OCI
//! reference.

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FieldError;

/// The chart as a client sends it; [`ChartSource::parse`] decides which kind it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    /// A chart directory or archive relative to the server's chart catalog.
    pub path: Option<String>,
    /// A chart repository URL (`https://...`); needs `name` and `version`.
    pub repo: Option<String>,
    /// The chart name in `repo`.
    pub name: Option<String>,
    /// An OCI reference (`oci://registry/path/chart`); needs `version`.
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

impl ChartSource {
    pub fn parse(spec: ChartSpec, catalog: &ChartCatalog) -> Result<Self, Vec<FieldError>> {
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
                if !(repo.starts_with("https://") || repo.starts_with("http://"))
                    || repo.len() > 2048
                    || repo.contains(char::is_whitespace)
                {
                    errors.push(FieldError::new(
                        field("repo"),
                        "must be an http(s) URL of a chart repository",
                    ));
                }
                let name = require(name, &field("name"), check_chart_name, &mut errors);
                let version = require(version, &field("version"), check_version, &mut errors);
                match (name, version) {
                    (Some(name), Some(version)) if errors.is_empty() => Ok(ChartSource::Repo {
                        repo,
                        name,
                        version,
                    }),
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
                let reference = oci.strip_prefix("oci://").unwrap_or_default();
                if reference.is_empty()
                    || reference.len() > 1024
                    || !reference.contains('/')
                    || reference.contains(char::is_whitespace)
                    || reference
                        .rsplit('/')
                        .next()
                        .is_some_and(|chart| chart.contains([':', '@']))
                {
                    errors.push(FieldError::new(
                        field("oci"),
                        "must be an OCI reference oci://registry/path/chart without a tag (give the version separately)",
                    ));
                }
                let version = require(version, &field("version"), check_version, &mut errors);
                match version {
                    Some(version) if errors.is_empty() => Ok(ChartSource::Oci { oci, version }),
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

    #[test]
    fn exactly_one_source() {
        let none = ChartCatalog::default();
        assert!(matches!(
            ChartSource::parse(spec(Some("web"), None, None, None, None), &none),
            Ok(ChartSource::Path { .. })
        ));
        assert!(matches!(
            ChartSource::parse(
                spec(
                    None,
                    Some("https://charts.example"),
                    Some("web"),
                    None,
                    Some("1.2.3")
                ),
                &none
            ),
            Ok(ChartSource::Repo { .. })
        ));
        assert!(matches!(
            ChartSource::parse(
                spec(
                    None,
                    None,
                    None,
                    Some("oci://ghcr.io/acme/web"),
                    Some("1.2.3")
                ),
                &none
            ),
            Ok(ChartSource::Oci { .. })
        ));
        let errors = ChartSource::parse(
            spec(Some("web"), Some("https://x"), None, None, None),
            &none,
        )
        .unwrap_err();
        assert_eq!(errors[0].field, "chart");
        let errors =
            ChartSource::parse(spec(None, Some("https://x"), None, None, None), &none).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["chart.name", "chart.version"]);
    }

    #[test]
    fn paths_stay_inside_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("web")).unwrap();
        let catalog = ChartCatalog::new(Some(dir.path().to_owned()));
        assert!(ChartSource::parse(spec(Some("web"), None, None, None, None), &catalog).is_ok());
        for bad in ["../etc", "/etc", "web/../../x", "missing"] {
            let errors =
                ChartSource::parse(spec(Some(bad), None, None, None, None), &catalog).unwrap_err();
            assert_eq!(errors[0].field, "chart.path", "{bad}");
        }
    }
}
