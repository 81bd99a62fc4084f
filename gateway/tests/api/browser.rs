//! A real Chromium, driven over WebDriver (chromedriver), clicking through
//! the web app as a person would; and the screenshots it takes of each
//! page, at a desktop's and a phone's width, into `var/screenshots/`
//! (not committed).

use std::{path::PathBuf, process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Widths and heights the screenshots are taken at.
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    client: Client,
    base: String,
    _driver: tokio::process::Child,
}

impl Browser {
    /// A fresh headless Chromium (its own profile: no cookies) at the web
    /// app served from `base`.
    pub async fn start(base: &str) -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the browser tests need Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"
        );
        let port = platform::testing::free_port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--hide-scrollbars", "--force-device-scale-factor=1"],
            }
        });
        let capabilities = match capabilities {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "chromedriver never answered: {err}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Self {
            client,
            base: base.to_owned(),
            _driver: driver,
        }
    }

    /// Opens a path of the web app (or a whole URL).
    pub async fn open(&self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.goto(&url).await.expect("the page opens");
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("a current URL")
            .path()
            .to_owned()
    }

    /// The URL of the page shown now.
    pub async fn url(&self) -> String {
        self.client.current_url().await.expect("a current URL").to_string()
    }

    /// The text a person sees on the page.
    pub async fn text(&self) -> String {
        self.client
            .find(Locator::Css("body"))
            .await
            .expect("a body")
            .text()
            .await
            .expect("its text")
    }

    /// Waits until the page shows `text` (pages change after a click).
    pub async fn wait_for_text(&self, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if self.text().await.contains(text) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the page never showed {text:?}; it shows:\n{}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The text of the element `css` selects.
    pub async fn text_of(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("nothing matches {css}"))
            .text()
            .await
            .unwrap()
    }

    /// The text of every element `css` selects, in page order.
    pub async fn texts_of_all(&self, css: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(css)).await.unwrap() {
            texts.push(element.text().await.unwrap().trim().to_owned());
        }
        texts
    }

    /// Clicks the button reading `text` inside the element `css` selects,
    /// and waits for the next page.
    pub async fn click_in(&self, css: &str, text: &str) {
        let before = self.client.find(Locator::Css("html")).await.unwrap();
        let scope = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|_| panic!("nothing matches {css}"));
        let xpath = format!(".//button[normalize-space()={}]", xpath_string(text));
        scope.find(Locator::XPath(&xpath)).await.unwrap().click().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while before.tag_name().await.is_ok() {
            assert!(std::time::Instant::now() < deadline, "clicking {text:?} loaded no page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `value` into the field labelled `label`.
    pub async fn fill(&self, label: &str, value: &str) {
        let xpath = format!("//label[normalize-space()={}]", xpath_string(label));
        let label_element = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|_| panic!("no field labelled {label:?}"));
        let id = label_element
            .attr("for")
            .await
            .unwrap()
            .expect("labels name their field");
        let field = self.client.find(Locator::Id(&id)).await.expect("the labelled field");
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Ticks the checkbox whose label contains `label`.
    pub async fn tick(&self, label: &str) {
        let xpath = format!("//label[contains(normalize-space(), {})]/input", xpath_string(label));
        self.client
            .find(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|_| panic!("no checkbox labelled {label:?}"))
            .click()
            .await
            .unwrap();
    }

    /// The visible button — or else link — reading exactly `text`.
    pub async fn control(&self, text: &str) -> Element {
        let buttons = format!("//button[normalize-space()={}]", xpath_string(text));
        let links = format!("//a[normalize-space()={}]", xpath_string(text));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            for xpath in [&buttons, &links] {
                for element in self.client.find_all(Locator::XPath(xpath)).await.unwrap() {
                    if element.is_displayed().await.unwrap_or(false) {
                        return element;
                    }
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no visible button or link {text:?}; the page shows:\n{}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the visible button or link reading exactly `text`.
    pub async fn click(&self, text: &str) {
        self.control(text).await.click().await.unwrap();
    }

    /// Clicks `text` and waits until another page has loaded.
    pub async fn click_and_wait(&self, text: &str) {
        let before = self.client.find(Locator::Css("html")).await.unwrap();
        self.click(text).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        // The old document's element goes stale once the new one is loaded.
        while before.tag_name().await.is_ok() {
            assert!(std::time::Instant::now() < deadline, "clicking {text:?} loaded no page");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css("body"))
            .await
            .unwrap();
    }

    /// Saves the page as `<name>-desktop.png` and `<name>-phone.png`.
    pub async fn screenshot(&self, name: &str) {
        let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../var/screenshots");
        std::fs::create_dir_all(&folder).unwrap();
        for (suffix, (width, height)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            self.client.set_window_size(width, height).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(folder.join(format!("{name}-{suffix}.png")), png).unwrap();
        }
        self.client.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// `text` as an XPath string literal.
fn xpath_string(text: &str) -> String {
    if text.contains('\'') {
        format!("\"{text}\"")
    } else {
        format!("'{text}'")
    }
}
