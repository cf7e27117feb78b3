//! The live view as a person sees it: the client runs on a pseudo-terminal (a tmux pane) and the
//! screen is read while the deploy rolls out.

use std::process::{Command, Output};
use std::time::Duration;

use tokio::time::Instant;

use super::{SAFETY_TIMEOUT, Server};

/// A tmux server of this test's own (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        let works = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|output| output.status.success());
        assert!(
            works,
            "this test reads the screen of a pseudo-terminal through tmux: apt-get install tmux"
        );
        Tmux {
            socket: format!("rollcall-test-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            // The pane's shell must not think it runs in a CI job.
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITLAB_CI")
            .output()
            .expect("run tmux");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The visible screen, line by line.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "client"]).stdout)
            .into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The lines of the screen that show the resource `label` (`✓ Deployment/web  3/3 ready ...`).
fn resource_lines<'a>(screen: &'a str, label: &str) -> Vec<&'a str> {
    screen
        .lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            let symbol = words.next().unwrap_or_default();
            symbol.chars().count() == 1 && words.next() == Some(label)
        })
        .collect()
}

#[tokio::test]
async fn the_terminal_view_redraws_each_resource_line_in_place() {
    let tmux = Tmux::new();
    let server = Server::start(0.1).await;
    let app = &server.app;
    let command = format!(
        "{} deploy web -n default --chart web --set replicas=3,behavior=readyAfter=30s; \
         echo \"exit status $?\"; sleep 600",
        env!("CARGO_BIN_EXE_rollcall")
    );
    tmux.tmux(&[
        "new-session",
        "-d",
        "-s",
        "client",
        "-x",
        "150",
        "-y",
        "40",
        "-e",
        &format!("ROLLCALL_URL={}", app.address),
        "-e",
        &format!("ROLLCALL_TOKEN={}", app.admin_token),
        &command,
    ]);

    let deadline = Instant::now() + SAFETY_TIMEOUT;
    let mut screens = Vec::new();
    let last = loop {
        let screen = tmux.screen();
        if screen.contains("exit status") {
            break screen;
        }
        assert!(
            Instant::now() < deadline,
            "the client never ended:\n{screen}"
        );
        screens.push(screen);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert!(last.contains("exit status 0"), "{last}");
    for screen in screens.iter().chain([&last]) {
        assert!(
            resource_lines(screen, "Deployment/web").len() <= 1,
            "the resource's line is redrawn, not repeated:\n{screen}"
        );
    }
    let rolling_out = screens.iter().find(|screen| {
        resource_lines(screen, "Deployment/web")
            .first()
            .is_some_and(|line| line.contains("0/3 ready") && !line.contains('✓'))
    });
    assert!(
        rolling_out.is_some(),
        "a screen shows the rollout under way:\n{}",
        screens.join("\n----\n")
    );
    let finished = resource_lines(&last, "Deployment/web");
    assert!(
        finished.len() == 1 && finished[0].contains("✓") && finished[0].contains("3/3 ready"),
        "the line ends ready, in place:\n{last}"
    );
    assert!(
        last.lines()
            .any(|line| line.starts_with("web → default succeeded")),
        "the header ends with the outcome:\n{last}"
    );
    server.shutdown().await;
}
