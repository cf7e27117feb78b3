//! Headless Chromium driven through chromedriver (WebDriver): a fresh profile per browser, no
//! background networking, every request the browser makes recorded (Chrome's performance log) and
//! its console kept, screenshots saved under `target/ui-screenshots/`.

use std::future::Future;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Generous: only guards against a hung test.
pub const PATIENCE: Duration = Duration::from_secs(30);

const INSTALL: &str = "the browser tests need Chromium and chromedriver: \
    apt-get install chromium chromium-driver (.ci/run installs them), or point CHROMIUM_BIN and \
    CHROMEDRIVER_BIN at them";

/// As the machine notes say Chromium must run here: headless, nothing in the background that
/// would reach for the network, a profile of its own.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
];

fn binary(variable: &str, default: &str) -> PathBuf {
    let bin = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    let works = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(works, "{} does not run: {INSTALL}", bin.display());
    bin
}

/// Chrome's log of one kind (`browser`: the console; `performance`: DevTools events), drained.
#[derive(Debug)]
struct ReadLog(&'static str);

impl WebDriverCompatibleCommand for ReadLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({"type": self.0}).to_string()),
        )
    }
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    /// Every URL the browser requested since the session's first page, in order.
    requests: Mutex<Vec<String>>,
    console: Mutex<Vec<Value>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A browser whose window is `width` × `height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let chromium = binary("CHROMIUM_BIN", "/usr/bin/chromium");
        let chromedriver = binary("CHROMEDRIVER_BIN", "chromedriver");
        let profile = tempfile::tempdir().expect("profile directory");
        let log = std::fs::File::create(profile.path().join("chromedriver.log")).expect("log");
        let port = free_port();
        // Its own process group, so that dropping the browser ends Chromium too.
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("chromedriver does not start ({error}): {INSTALL}"));
        let address = format!("http://127.0.0.1:{port}");
        wait_until_ready(&address, profile.path()).await;

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!(
            "--user-data-dir={}",
            profile.path().join("chromium").display()
        ));
        args.push(format!("--window-size={width},{height}"));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&address)
            .await
            .expect("a WebDriver session");
        let browser = Browser {
            client,
            driver,
            requests: Mutex::new(Vec::new()),
            console: Mutex::new(Vec::new()),
            _profile: profile,
        };
        // The browser's own start page is left, and what it loaded forgotten: from here on, every
        // request is the tested pages' doing.
        browser.goto("about:blank").await;
        browser.read_log("performance").await;
        browser
    }

    async fn read_log(&self, kind: &'static str) -> Vec<Value> {
        let entries = self
            .client
            .issue_cmd(ReadLog(kind))
            .await
            .expect("log read");
        entries.as_array().cloned().unwrap_or_default()
    }

    /// Every URL requested so far (DevTools' `Network.requestWillBeSent`: also the requests the
    /// page's policy blocked).
    pub async fn requests(&self) -> Vec<String> {
        let entries = self.read_log("performance").await;
        let mut requests = self.requests.lock().unwrap();
        for entry in entries {
            let message: Value = serde_json::from_str(entry["message"].as_str().unwrap_or("{}"))
                .expect("a DevTools message");
            if message["message"]["method"] == "Network.requestWillBeSent" {
                let url = &message["message"]["params"]["request"]["url"];
                requests.push(url.as_str().unwrap_or_default().to_owned());
            }
        }
        requests.clone()
    }

    /// The console messages so far.
    pub async fn console(&self) -> Vec<Value> {
        let entries = self.read_log("browser").await;
        let mut console = self.console.lock().unwrap();
        console.extend(entries);
        console.clone()
    }

    /// Fails unless every request went to `origin` (e.g. `http://127.0.0.1:4000`) and the console
    /// holds no error but the API's own error answers (no policy violation, no exception).
    pub async fn assert_stayed_on(&self, origin: &str) {
        let requests = self.requests().await;
        assert!(!requests.is_empty(), "no request was recorded");
        let prefix = format!("{origin}/");
        let elsewhere: Vec<&String> = requests
            .iter()
            .filter(|url| !url.starts_with(&prefix))
            .collect();
        assert!(
            elsewhere.is_empty(),
            "requests left {origin}: {elsewhere:#?}"
        );
        let errors: Vec<Value> = self
            .console()
            .await
            .into_iter()
            .filter(|entry| entry["level"] == "SEVERE")
            .filter(|entry| {
                let text = entry["message"].as_str().unwrap_or_default();
                // A 4xx the test provoked (a refused cancel, a wrong token) is logged like this.
                !(text.contains("Failed to load resource") && text.starts_with(origin))
            })
            .collect();
        assert!(errors.is_empty(), "console errors: {errors:#?}");
    }

    /// The URL of every request so far that contains `secret`, to show that it never travels in
    /// one.
    pub async fn requests_containing(&self, secret: &str) -> Vec<String> {
        self.requests()
            .await
            .into_iter()
            .filter(|url| url.contains(secret))
            .collect()
    }

    /// Saves a screenshot of the viewport as `target/ui-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    /// As [`Browser::screenshot`], with the window made as tall as the page first.
    pub async fn full_page_screenshot(&self, name: &str, width: u32) -> PathBuf {
        let height = self
            .run("return document.documentElement.scrollHeight")
            .await;
        let height = height.as_u64().unwrap_or(900).clamp(600, 8000) as u32;
        self.client
            .set_window_size(width, height + 140)
            .await
            .expect("window resized");
        self.screenshot(name).await
    }

    /// Runs `script` in the page (`arguments[i]` are `args`) and returns what it returns.
    pub async fn run_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("script failed ({error}): {script}"))
    }

    pub async fn run(&self, script: &str) -> Value {
        self.run_with(script, Vec::new()).await
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigation");
    }

    /// Types `text` into the element `css` (real key events, as a person types).
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        element.send_keys(text).await.expect("keys sent");
    }

    /// Presses Enter in the element `css`.
    pub async fn press_enter(&self, css: &str) {
        let enter: char = fantoccini::key::Key::Enter.into();
        self.type_into(css, &enter.to_string()).await;
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no element {css} ({error})"))
    }

    /// The visible text of `css`, or "" when there is none.
    pub async fn text(&self, css: &str) -> String {
        self.run_with(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits until the text of `css` is what `wanted` accepts, and returns it.
    pub async fn wait_for_text(&self, css: &str, wanted: impl Fn(&str) -> bool) -> String {
        eventually(&format!("the awaited text in {css}"), || async {
            let text = self.text(css).await;
            wanted(&text).then_some(text)
        })
        .await
    }

    /// Signs in on `/ui` with `token`, typed and submitted with the keyboard, and waits for the
    /// deploy list.
    pub async fn sign_in(&self, address: &str, token: &str) {
        self.goto(&format!("{address}/ui")).await;
        self.type_into("#token", token).await;
        self.press_enter("#token").await;
        self.wait_for_text("main h1", |title| title == "Deploys")
            .await;
    }

    /// Pages that fail the basic accessibility rules: controls without a label, buttons without
    /// a name, text below WCAG AA contrast (`a11y.js`).
    pub async fn accessibility_problems(&self) -> Vec<String> {
        let problems = self.run(include_str!("a11y.js")).await;
        serde_json::from_value(problems).expect("a list of problems")
    }

    /// Fails when the page is wider than the window (a narrow screen must not scroll sideways).
    pub async fn assert_fits_the_window(&self, what: &str) {
        let sizes = self
            .run("return [document.documentElement.scrollWidth, window.innerWidth]")
            .await;
        assert!(
            sizes[0].as_u64() <= sizes[1].as_u64(),
            "{what} is wider than the window (scroll width, window width): {sizes}"
        );
    }

    /// Ends the session and Chromium.
    pub async fn close(self) {
        let _ended = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process group this browser started; no memory effects.
        unsafe { libc::kill(-(self.driver.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

async fn wait_until_ready(address: &str, profile: &Path) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = client.get(format!("{address}/status")).send().await;
        if let Ok(response) = status
            && let Ok(body) = response.json::<Value>().await
            && body["value"]["ready"] == true
        {
            return;
        }
        let log = std::fs::read_to_string(profile.join("chromedriver.log")).unwrap_or_default();
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver never became ready:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp is inside target/")
        .join("ui-screenshots")
}

/// Polls `check` until it returns something (every 100 ms, for at most [`PATIENCE`]).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
