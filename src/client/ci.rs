//! CI conventions. GitHub Actions: failures as `::error` workflow commands, collapsible groups, a
//! Markdown summary appended to `$GITHUB_STEP_SUMMARY`, and text from the cluster printed between
//! `::stop-commands::<token>` markers so that an application's output cannot drive the runner.
//! GitLab CI: collapsible sections.

use std::io::Write as _;
use std::path::PathBuf;

use rand::Rng;

#[derive(Debug)]
pub enum Ci {
    Plain,
    GitHub {
        /// Unguessable per run: only rollcall can end its stop-commands region.
        stop_token: String,
        summary: Option<PathBuf>,
    },
    GitLab,
}

impl Ci {
    /// From the environment the CI runner sets (`GITHUB_ACTIONS=true`, `GITLAB_CI=true`).
    pub fn detect() -> Ci {
        Ci::from_env(|name| std::env::var(name).ok())
    }

    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Ci {
        if var("GITHUB_ACTIONS").as_deref() == Some("true") {
            Ci::GitHub {
                stop_token: hex::encode(rand::rng().random::<[u8; 16]>()),
                summary: var("GITHUB_STEP_SUMMARY")
                    .filter(|path| !path.is_empty())
                    .map(PathBuf::from),
            }
        } else if var("GITLAB_CI").as_deref() == Some("true") {
            Ci::GitLab
        } else {
            Ci::Plain
        }
    }

    /// The line that opens a collapsible section `id` (`[A-Za-z0-9_]`) titled `title`.
    pub fn section_start(&self, id: &str, title: &str, collapsed: bool) -> Option<String> {
        match self {
            Ci::Plain => None,
            Ci::GitHub { .. } => Some(format!("::group::{}", escape_data(title))),
            Ci::GitLab => Some(format!(
                "\x1b[0Ksection_start:{}:{id}[collapsed={collapsed}]\r\x1b[0K{title}",
                chrono::Utc::now().timestamp()
            )),
        }
    }

    pub fn section_end(&self, id: &str) -> Option<String> {
        match self {
            Ci::Plain => None,
            Ci::GitHub { .. } => Some("::endgroup::".to_owned()),
            Ci::GitLab => Some(format!(
                "\x1b[0Ksection_end:{}:{id}\r\x1b[0K",
                chrono::Utc::now().timestamp()
            )),
        }
    }

    /// Opens a region where workflow commands are not processed.
    pub fn untrusted_start(&self) -> Option<String> {
        match self {
            Ci::GitHub { stop_token, .. } => Some(format!("::stop-commands::{stop_token}")),
            _ => None,
        }
    }

    pub fn untrusted_end(&self) -> Option<String> {
        match self {
            Ci::GitHub { stop_token, .. } => Some(format!("::{stop_token}::")),
            _ => None,
        }
    }

    /// An error annotation of the job (GitHub); its text cannot end the line or start another.
    pub fn error(&self, title: &str, message: &str) -> Option<String> {
        match self {
            Ci::GitHub { .. } => Some(format!(
                "::error title={}::{}",
                escape_property(title),
                escape_data(message)
            )),
            _ => None,
        }
    }

    /// Appends `markdown` to the job's summary, when there is one.
    pub fn append_summary(&self, markdown: &str) -> std::io::Result<()> {
        let Ci::GitHub {
            summary: Some(path),
            ..
        } = self
        else {
            return Ok(());
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(markdown.as_bytes())
    }

    pub fn writes_summary(&self) -> bool {
        matches!(
            self,
            Ci::GitHub {
                summary: Some(_),
                ..
            }
        )
    }
}

/// Workflow command data (`@actions/core`'s `escapeData`).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Workflow command property values (`escapeProperty`).
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Text for a Markdown paragraph or table cell: no markup, no HTML, one line.
pub fn markdown_text(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in super::text::one_line(text).chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                escaped.push('\\');
                escaped.push(c);
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// A fenced code block that `lines` cannot close early.
pub fn markdown_code_block(lines: &[String]) -> String {
    let longest_run = lines
        .iter()
        .flat_map(|line| line.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest_run.max(2) + 1);
    let mut block = format!("{fence}text\n");
    for line in lines {
        block.push_str(&super::text::one_line(line));
        block.push('\n');
    }
    block.push_str(&fence);
    block.push('\n');
    block
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github() -> Ci {
        Ci::from_env(|name| (name == "GITHUB_ACTIONS").then(|| "true".to_owned()))
    }

    #[test]
    fn the_runner_is_recognized_by_its_variables() {
        assert!(matches!(Ci::from_env(|_| None), Ci::Plain));
        assert!(matches!(
            Ci::from_env(|name| (name == "GITLAB_CI").then(|| "true".to_owned())),
            Ci::GitLab
        ));
        let Ci::GitHub { stop_token, .. } = github() else {
            panic!("GitHub Actions not recognized");
        };
        let Ci::GitHub {
            stop_token: other, ..
        } = github()
        else {
            unreachable!()
        };
        assert_eq!(stop_token.len(), 32);
        assert_ne!(stop_token, other, "a fresh token per run");
    }

    #[test]
    fn an_error_annotation_cannot_be_split_into_commands() {
        let line = github()
            .error(
                "deploy web: failed, CrashLoopBackOff",
                "50% done\n::add-mask::x\r",
            )
            .unwrap();
        assert_eq!(
            line,
            "::error title=deploy web%3A failed%2C CrashLoopBackOff::50%25 done%0A::add-mask::x%0D"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn markdown_from_the_cluster_stays_text() {
        assert_eq!(
            markdown_text("<img src=x> *bold* | `code`"),
            "&lt;img src=x&gt; \\*bold\\* \\| \\`code\\`"
        );
        let block = markdown_code_block(&["```".to_owned(), "plain".to_owned()]);
        assert!(block.starts_with("````text\n"), "{block}");
        assert!(block.ends_with("\n````\n"), "{block}");
    }
}
