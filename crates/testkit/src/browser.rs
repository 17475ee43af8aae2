//! A real browser for the tests of Herald's HTML pages: Debian's headless Chromium driven through
//! WebDriver (its `chromedriver`, started per [`Browser`] and killed with it), with the steps a
//! flow test takes (go, fill, submit, read), axe-core's accessibility check and screenshots.
//!
//! Nothing here skips: when chromium, chromedriver or axe-core is missing the test fails with a
//! sentence saying how to install it (`scripts/browser-deps.sh` does all three, and
//! `scripts/test.sh` exports `HERALD_AXE_JS` from it). WebDriver cannot see HTTP statuses, so
//! nothing here offers them: check a status with [`crate::http`].

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// Debian's `chromium-driver`.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's `chromium`.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How to get chromium and chromedriver, in every message about a missing one.
const INSTALL_HINT: &str = "install them with `apt-get update && apt-get install -y \
     --no-install-recommends chromium chromium-driver` (scripts/browser-deps.sh does it, and \
     scripts/test.sh runs that)";
/// The axe-core rules the pages must pass: WCAG 2.0 A and AA, and WCAG 2.1 AA.
const AXE_RUN: &str = "const done = arguments[arguments.length - 1];\
     axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})\
     .then(r => done(r.violations), e => done({error: String(e)}));";
/// How long chromedriver may take to answer `GET /status` with `ready`.
const DRIVER_READY_WITHIN: Duration = Duration::from_secs(20);
/// How long [`Browser::submit`] waits for the next page.
const NAVIGATION_WITHIN: Duration = Duration::from_secs(20);

/// How a [`Browser`] starts; [`BrowserConfig::default`] is what [`Browser::start`] uses.
#[derive(Debug, Clone)]
pub struct BrowserConfig {
    /// The window's inner size in CSS pixels, fixed so that screenshots are stable.
    pub window: (u32, u32),
    /// The browser's `Accept-Language` (Chromium's `intl.accept_languages` preference), e.g.
    /// `"ja"` to see a page negotiate Japanese.
    pub accept_language: String,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        BrowserConfig {
            window: (1000, 900),
            accept_language: "en-US,en".to_owned(),
        }
    }
}

/// A headless Chromium session with its own chromedriver and a fresh profile. Dropping it kills
/// chromedriver and the browser; [`Browser::close`] ends the session politely first.
///
/// ```no_run
/// # async fn flow(base: &str) -> anyhow::Result<()> {
/// use herald_testkit::browser::Browser;
///
/// let browser = Browser::start().await?;
/// browser.goto(&format!("{base}/u/reset-password?ticket=t")).await?;
/// browser.assert_accessible("the password-change form").await?;
/// browser.fill("New password", "correct horse battery staple").await?;
/// browser.submit("Change password").await?;
/// assert!(browser.text().await?.contains("Password changed"));
/// browser.close().await?;
/// # Ok(())
/// # }
/// ```
pub struct Browser {
    /// `None` only after [`Browser::close`] took it.
    client: Option<Client>,
    driver: Child,
    driver_log: PathBuf,
    /// Holds the profile (`--user-data-dir`) and chromedriver's log; removed after both are dead.
    scratch: tempfile::TempDir,
}

impl fmt::Debug for Browser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Browser")
            .field("chromedriver_pid", &self.driver.id())
            .field("profile", &self.scratch.path())
            .finish()
    }
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session with
    /// [`BrowserConfig::default`].
    pub async fn start() -> anyhow::Result<Browser> {
        Browser::start_with(BrowserConfig::default()).await
    }

    /// Starts chromedriver on a free port and a headless Chromium session configured by `config`.
    ///
    /// # Errors
    /// If chromium or chromedriver is not installed (the message gives the apt command), if
    /// chromedriver does not become ready, or if it cannot start the browser (the message carries
    /// chromedriver's output).
    pub async fn start_with(config: BrowserConfig) -> anyhow::Result<Browser> {
        for program in [CHROMEDRIVER, CHROMIUM] {
            if !Path::new(program).exists() {
                bail!("the browser tests need {program} and it is not installed; {INSTALL_HINT}");
            }
        }
        let scratch = tempfile::Builder::new()
            .prefix("herald-browser-")
            .tempdir()
            .context("creating the browser's scratch directory")?;
        let profile = scratch.path().join("profile");
        let driver_log = scratch.path().join("chromedriver.log");
        let port = free_port()?;
        let driver = spawn_driver(port, &driver_log)?;
        let mut browser = Browser {
            client: None,
            driver,
            driver_log,
            scratch,
        };
        browser.wait_until_driver_ready(port).await?;

        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities(&config, &profile));
        let client = builder
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| {
                anyhow!(
                    "chromedriver could not start {CHROMIUM} ({e}); chromedriver said:\n{}",
                    browser.driver_output()
                )
            })?;
        // `--window-size` is the outer size; headless Chromium keeps room for browser chrome
        // inside it. Grow the window by that room, so the page (and every screenshot) gets
        // exactly the configured size.
        let (width, height) = config.window;
        let inner = client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        let inner_of = |i: usize| inner[i].as_u64().and_then(|v| u32::try_from(v).ok());
        if let (Some(w), Some(h)) = (inner_of(0), inner_of(1))
            && (w, h) != (width, height)
        {
            client
                .set_window_size(
                    width + width.saturating_sub(w),
                    height + height.saturating_sub(h),
                )
                .await
                .context("sizing the browser window")?;
        }
        browser.client = Some(client);
        Ok(browser)
    }

    /// The WebDriver client, for anything the helpers here do not cover.
    pub fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the client is there until close() consumes the browser")
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client()
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    /// The address the browser shows, after any redirects.
    pub async fn url(&self) -> anyhow::Result<url::Url> {
        Ok(self.client().current_url().await?)
    }

    /// The page's `<title>`.
    pub async fn title(&self) -> anyhow::Result<String> {
        Ok(self.client().title().await?)
    }

    /// The text a person sees on the page (the body's rendered text).
    pub async fn text(&self) -> anyhow::Result<String> {
        let body = self.client().find(Locator::Css("body")).await?;
        Ok(body.text().await?)
    }

    /// Types `value` into the input, textarea or select whose label reads `label` (the label's
    /// whole text, spaces collapsed), whose `aria-label` is `label`, or whose `name` is `label`,
    /// after clearing it.
    pub async fn fill(&self, label: &str, value: &str) -> anyhow::Result<()> {
        let l = xpath_literal(label);
        let xpath = format!(
            "//*[self::input or self::textarea or self::select][\
             @id = //label[normalize-space(.) = {l}]/@for \
             or ancestor::label[normalize-space(.) = {l}] \
             or @aria-label = {l} or @name = {l}]"
        );
        let field = self
            .find(&xpath, || format!("no field labelled or named {label:?}"))
            .await?;
        field.clear().await?;
        field
            .send_keys(value)
            .await
            .with_context(|| format!("typing into the field {label:?}"))
    }

    /// Clicks the button (`<button>`, or an `<input type=submit|button>`) whose text reads
    /// `button`, and waits until the next page has loaded, whatever redirects it took.
    pub async fn submit(&self, button: &str) -> anyhow::Result<()> {
        let b = xpath_literal(button);
        let xpath = format!(
            "//button[normalize-space(.) = {b}] \
             | //input[(@type = 'submit' or @type = 'button') and @value = {b}]"
        );
        let element = self
            .find(&xpath, || format!("no button reading {button:?}"))
            .await?;
        // A mark on the old page's window: the next page is there when the mark is gone.
        self.client()
            .execute("window.__heraldOldPage = true;", vec![])
            .await?;
        element
            .click()
            .await
            .with_context(|| format!("clicking the button {button:?}"))?;
        let deadline = Instant::now() + NAVIGATION_WITHIN;
        loop {
            // Scripts can fail while the old page goes away; that only means "not yet".
            let loaded = self
                .client()
                .execute(
                    "return !window.__heraldOldPage && document.readyState === 'complete';",
                    vec![],
                )
                .await;
            if matches!(loaded, Ok(Value::Bool(true))) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "after clicking {button:?} no new page loaded within {NAVIGATION_WITHIN:?} \
                     (still at {})",
                    self.url().await?
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs axe-core's WCAG 2.0 A/AA and 2.1 AA rules on the current page and returns its
    /// violations (axe's objects: `id`, `impact`, `help`, `nodes[].target`, ...). axe.min.js is
    /// read from the file `HERALD_AXE_JS` names and injected with WebDriver's execute-script,
    /// which the page's CSP does not govern.
    ///
    /// # Errors
    /// If `HERALD_AXE_JS` is unset or unreadable (the message says how to get it), or axe fails.
    pub async fn axe_violations(&self) -> anyhow::Result<Vec<Value>> {
        let loaded = self
            .client()
            .execute("return typeof axe !== 'undefined';", vec![])
            .await?;
        if loaded != Value::Bool(true) {
            self.client()
                .execute(&axe_source()?, vec![])
                .await
                .context("injecting axe-core into the page")?;
        }
        match self.client().execute_async(AXE_RUN, vec![]).await? {
            Value::Array(violations) => Ok(violations),
            other => bail!("axe-core did not run: {other}"),
        }
    }

    /// Fails, listing every violation (rule, what it asks, the offending elements), if axe-core
    /// finds any on the current page. `what` names the page in the message.
    pub async fn assert_accessible(&self, what: &str) -> anyhow::Result<()> {
        let violations = self.axe_violations().await?;
        if violations.is_empty() {
            return Ok(());
        }
        bail!(
            "axe-core found {} accessibility violation(s) on {what} ({}):\n{}",
            violations.len(),
            self.url().await?,
            describe_violations(&violations)
        )
    }

    /// Saves a PNG of the window (its fixed [`BrowserConfig::window`] size) at `path`, creating
    /// the folders above it.
    pub async fn screenshot_to(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        let png = self.client().screenshot().await?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Ends the WebDriver session (the browser quits), then chromedriver is killed as in `Drop`.
    pub async fn close(mut self) -> anyhow::Result<()> {
        if let Some(client) = self.client.take() {
            client.close().await.context("ending the browser session")?;
        }
        Ok(())
    }

    async fn find(
        &self,
        xpath: &str,
        missing: impl FnOnce() -> String,
    ) -> anyhow::Result<fantoccini::elements::Element> {
        match self.client().find(Locator::XPath(xpath)).await {
            Ok(element) => Ok(element),
            Err(e) if e.is_no_such_element() => bail!("{} on {}", missing(), self.url().await?),
            Err(e) => Err(e.into()),
        }
    }

    async fn wait_until_driver_ready(&mut self, port: u16) -> anyhow::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + DRIVER_READY_WITHIN;
        loop {
            if let Some(status) = self.driver.try_wait()? {
                bail!(
                    "chromedriver exited ({status}) before it was ready; it said:\n{}",
                    self.driver_output()
                );
            }
            // Listening is ready enough: chromedriver takes sessions as soon as it listens. (Its
            // `GET /status` keeps the connection open after the answer, whatever the request's
            // `Connection: close` says, so a client that reads to the end would wait forever.)
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "chromedriver on port {port} was not ready within {DRIVER_READY_WITHIN:?}; \
                     it said:\n{}",
                    self.driver_output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn driver_output(&self) -> String {
        std::fs::read_to_string(&self.driver_log).unwrap_or_else(|e| {
            format!("(its log {} is unreadable: {e})", self.driver_log.display())
        })
    }
}

impl Drop for Browser {
    /// Kills chromedriver's process group (chromedriver, the browser and its helpers: they would
    /// outlive chromedriver otherwise), then reaps chromedriver. The profile goes after.
    fn drop(&mut self) {
        let group = rustix::process::Pid::from_child(&self.driver);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.driver.wait();
    }
}

/// The text of each violation, one line per offending element.
pub fn describe_violations(violations: &[Value]) -> String {
    let mut out = String::new();
    for v in violations {
        let impact = v["impact"].as_str().unwrap_or("?");
        out.push_str(&format!(
            "- {} ({impact}): {} ({})\n",
            v["id"].as_str().unwrap_or("?"),
            v["help"].as_str().unwrap_or(""),
            v["helpUrl"].as_str().unwrap_or("")
        ));
        for node in v["nodes"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "    at {}: {}\n",
                node["target"],
                node["html"].as_str().unwrap_or("")
            ));
        }
    }
    out
}

fn axe_source() -> anyhow::Result<String> {
    let path = std::env::var_os("HERALD_AXE_JS").ok_or_else(|| {
        anyhow!(
            "the accessibility check needs axe-core and HERALD_AXE_JS is not set; run the tests \
             with scripts/test.sh, or set HERALD_AXE_JS to the path `bash scripts/browser-deps.sh` \
             prints"
        )
    })?;
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading axe-core from HERALD_AXE_JS={}; `bash scripts/browser-deps.sh` installs it \
             and prints its path",
            Path::new(&path).display()
        )
    })
}

/// Starts chromedriver in a process group of its own (so `Drop` can end the browser with it),
/// its output going to `log`.
fn spawn_driver(port: u16, log: &Path) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;

    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {CHROMEDRIVER}; {INSTALL_HINT}"))
}

/// What chromedriver is asked for: headless Debian Chromium as root in a container (no sandbox,
/// no /dev/shm), quiet (nothing fetched but the pages under test), a fresh profile, and no
/// password manager bubbles over the forms.
fn capabilities(config: &BrowserConfig, profile: &Path) -> serde_json::Map<String, Value> {
    let (width, height) = config.window;
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "credentials_enable_service": false,
                "profile.password_manager_leak_detection": false,
                "intl.accept_languages": config.accept_language,
            },
        },
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// A port nobody listens on now (the OS's pick), for chromedriver.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `s` as an XPath 1.0 string literal (which has no escapes): quoted with whichever quote it
/// lacks, or pieced together with `concat()`.
fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

#[cfg(test)]
mod tests {
    use super::xpath_literal;

    #[test]
    fn xpath_literals_quote_any_text() {
        assert_eq!(xpath_literal("Email"), "'Email'");
        assert_eq!(xpath_literal("Bob's"), "\"Bob's\"");
        assert_eq!(xpath_literal(r#"a'b"c"#), r#"concat('a', "'", 'b"c')"#);
    }
}
