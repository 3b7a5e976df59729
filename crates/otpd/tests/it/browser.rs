//! The web pages in a real browser: Debian's Chromium, headless, driven through WebDriver
//! (chromedriver) with fantoccini. The server runs in this process with the test's clock,
//! so the test computes the codes an app would show. Each page is photographed at desktop
//! and phone width into `target/web-screenshots/`, and checked for sideways scrolling at
//! phone width and at the width 200 % zoom leaves a 1280-pixel screen.
//!
//! Ignored by default (they need `chromium` and `chromium-driver`, which `.ci/run`
//! installs); CI runs them with `--include-ignored`.

use crate::helpers::*;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process and a browser session on it; both end with the test.
struct Browser {
    client: Client,
    driver: Child,
    base: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start(app: &TestApp) -> Browser {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the browser tests need Debian's chromium and chromium-driver (.ci/run installs them)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver answers once it listens: poll for that (it is another process).
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,1000", "--lang=en"]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .unwrap();
        Browser {
            client,
            driver,
            base: app.base.clone(),
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Clicks the element; if that loads another page (a link, a form), waits until it has.
    async fn click(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
        let navigates = self
            .client
            .execute(
                "const e = document.querySelector(arguments[0]); \
                 return !!e && (e.tagName === 'A' || (e.type === 'submit' && !!e.form));",
                vec![json!(css)],
            )
            .await;
        // The element is gone with the old page, or still here if nothing navigated.
        if !matches!(navigates, Ok(serde_json::Value::Bool(false))) {
            self.wait_for_new_page(old).await;
        }
    }

    /// Waits until the page `old` was part of has been replaced and the new one loaded.
    async fn wait_for_new_page(&self, old: fantoccini::elements::Element) {
        for _ in 0..200 {
            if old.tag_name().await.is_err() {
                let ready = self
                    .client
                    .execute("return document.readyState;", vec![])
                    .await;
                if matches!(ready, Ok(serde_json::Value::String(s)) if s == "complete") {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("no new page after the click");
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    async fn page_text(&self) -> String {
        self.text("body").await
    }

    /// Signs in with the password; then with `code` if the account has a second factor.
    async fn sign_in(&self, username: &str, password: &str, code: Option<&str>) {
        self.goto("/ui/sign-in").await;
        self.type_into("#username", username).await;
        self.type_into("#password", password).await;
        self.click("form.card button[type=submit]").await;
        if let Some(code) = code {
            assert_eq!(self.path().await, "/ui/sign-in/code");
            self.type_into("#code", code).await;
            self.click("form.card button[type=submit]").await;
        }
    }

    async fn sign_out(&self) {
        self.click("header form button").await;
        assert_eq!(self.path().await, "/ui/sign-in?m=signed-out");
    }

    /// Photographs the page at desktop and phone width (`target/web-screenshots/`), and
    /// checks that nothing scrolls sideways at phone width or at the width 200 % zoom
    /// leaves of a 1280-pixel window.
    async fn photograph(&self, name: &str) {
        let dir = screenshot_dir();
        for (suffix, width, height) in [
            ("desktop", 1280, 1000),
            ("phone", 390, 1000),
            ("zoom200", 640, 1000),
        ] {
            self.client.set_window_size(width, height).await.unwrap();
            let overflow = self
                .client
                .execute(
                    "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
                    vec![],
                )
                .await
                .unwrap();
            assert!(
                overflow.as_i64().unwrap_or(1) <= 0,
                "{name} scrolls sideways at {width} pixels ({overflow})"
            );
            if suffix != "zoom200" {
                let png = self.client.screenshot().await.unwrap();
                std::fs::write(dir.join(format!("{name}-{suffix}.png")), png).unwrap();
            }
        }
        self.client.set_window_size(1280, 1000).await.unwrap();
    }
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver (installed by .ci/run)"]
async fn a_person_enrolls_and_signs_in_with_a_code_then_a_recovery_code() {
    let app = spawn_app().await;
    app.account("alice", &[]).await;
    let b = Browser::start(&app).await;
    b.goto("/ui/").await;
    assert_eq!(b.path().await, "/ui/sign-in");
    b.photograph("sign-in").await;
    b.sign_in("alice", "wrong", None).await;
    assert!(b.text("#password-error").await.contains("not right"));
    b.photograph("sign-in-error").await;
    b.sign_in("alice", PASSWORD, None).await;
    assert_eq!(b.path().await, "/ui/account");
    b.photograph("account-new").await;

    // Enroll: read the secret off the page, type the code the app would show.
    b.click("form[action='/ui/account/enroll'] button").await;
    assert_eq!(b.path().await, "/ui/account/enroll");
    // The script ran under the page's policy: the copy button is shown.
    let copy = b.client.find(Locator::Css("button.copy")).await.unwrap();
    assert!(copy.is_displayed().await.unwrap());
    assert!(b.client.find(Locator::Css("a.qr svg")).await.is_ok());
    let href = b
        .client
        .find(Locator::Css("a.qr"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(href.starts_with("otpauth://totp/otpd:alice?"), "{href}");
    // The countdown runs from the server's "seconds left", whatever the browser's clock.
    assert!(b.text("time").await.ends_with("(15:00)") || b.text("time").await.ends_with("(14:59)"));
    b.photograph("enroll").await;
    let secret = otp::Secret::from_base32(&b.text("#secret").await.replace(' ', "")).unwrap();
    b.type_into("#code", &app.code(&secret)).await;
    b.click("form[action='/ui/account/enroll/confirm'] button")
        .await;

    // The recovery codes, once; "I have saved them" before leaving.
    let codes: Vec<String> = {
        let items = b
            .client
            .find_all(Locator::Css("#codes li code"))
            .await
            .unwrap();
        let mut codes = Vec::new();
        for item in items {
            codes.push(item.text().await.unwrap());
        }
        codes
    };
    assert_eq!(codes.len(), 10);
    for button in ["button.print", "button.download", "button.copy"] {
        let shown = b.client.find(Locator::Css(button)).await.unwrap();
        assert!(shown.is_displayed().await.unwrap(), "{button}");
    }
    b.click("button.download").await;
    b.photograph("recovery-codes").await;
    b.click("#saved").await;
    b.click("form[action='/ui/account/recovery-codes/saved'] button")
        .await;
    assert_eq!(b.path().await, "/ui/account");
    assert_eq!(b.text("#codes-left").await, "10");
    b.photograph("account").await;
    b.click("a[href='/ui/account/password']").await;
    b.photograph("password").await;
    b.click("a.button[href='/ui/account']").await;
    b.sign_out().await;
    app.clock.advance(30);

    // A TOTP code.
    b.sign_in("alice", PASSWORD, Some(&app.code(&secret))).await;
    assert_eq!(b.path().await, "/ui/account");
    b.sign_out().await;
    // A recovery code, then the same one again: refused.
    b.goto("/ui/sign-in").await;
    b.type_into("#username", "alice").await;
    b.type_into("#password", PASSWORD).await;
    b.click("form.card button[type=submit]").await;
    b.photograph("second-factor").await;
    b.type_into("#code", &codes[0]).await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.path().await, "/ui/account");
    assert_eq!(b.text("#codes-left").await, "9");
    b.sign_out().await;
    b.sign_in("alice", PASSWORD, Some(&codes[0])).await;
    assert_eq!(b.path().await, "/ui/sign-in/code");
    assert!(b.text("#code-error").await.contains("not right"));
    b.photograph("second-factor-error").await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver (installed by .ci/run)"]
async fn removal_asks_for_a_fresh_code() {
    let app = spawn_app().await;
    let token = app.account("alice", &[]).await;
    let (secret, _) = app.enroll("alice", &token).await;
    let b = Browser::start(&app).await;
    b.sign_in("alice", PASSWORD, Some(&app.code(&secret))).await;
    assert_eq!(b.path().await, "/ui/account");
    // Within the step-up window a new secret needs no further code; it is shown once.
    b.click("a[href='/ui/account/confirm/renew']").await;
    b.click("form.card button[type=submit]").await;
    assert!(
        b.page_text()
            .await
            .contains("The old secret no longer works")
    );
    b.photograph("renewed").await;
    let secret = otp::Secret::from_base32(&b.text("#secret").await.replace(' ', "")).unwrap();
    b.click("a.button[href='/ui/account']").await;
    app.clock.advance(301); // past the step-up window
    b.click("a[href='/ui/account/confirm/remove']").await;
    b.photograph("confirm-remove").await;
    b.click("form.card button[type=submit]").await;
    // The core wants a fresh code: the page asks for it.
    assert!(b.page_text().await.contains("enter a current code"));
    b.photograph("step-up").await;
    b.type_into("#code", &app.code(&secret)).await;
    b.click("form.card button[type=submit]").await;
    assert_eq!(b.path().await, "/ui/account?m=removed");
    assert_eq!(
        b.client
            .find(Locator::Css("#factor-state"))
            .await
            .unwrap()
            .attr("data-state")
            .await
            .unwrap()
            .as_deref(),
        Some("none")
    );
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver (installed by .ci/run)"]
async fn an_admin_resets_a_lost_phone_and_the_user_enrolls_again() {
    let app = spawn_app().await;
    let token = app.account("alice", &[]).await;
    app.enroll("alice", &token).await;
    app.account("bob", &[]).await;
    let admin = Browser::start(&app).await;
    admin.sign_in("admin", &app.admin_password, None).await;
    assert_eq!(admin.path().await, "/ui/account");
    // The policy page: enforce two-factor authentication for everyone.
    admin.click("a[href='/ui/admin/policy']").await;
    admin.type_into("#window", "11").await;
    admin.click("form.card button[type=submit]").await;
    assert!(
        admin
            .text("#window-error")
            .await
            .contains("between 0 and 10")
    );
    admin.photograph("policy").await;
    admin.type_into("#window", "1").await;
    admin.click("#enforced").await;
    admin.click("form.card button[type=submit]").await;
    assert_eq!(admin.path().await, "/ui/admin/policy?m=policy-saved");

    admin.click("a[href='/ui/admin/accounts']").await;
    admin.type_into("#q", "al").await;
    admin.click("form.search button").await;
    admin.photograph("accounts").await;
    admin.click("a[href='/ui/admin/accounts/alice']").await;
    admin.photograph("admin-account").await;
    admin
        .click("a[href='/ui/admin/accounts/alice/confirm/reset']")
        .await;
    admin.photograph("confirm-reset").await;
    admin.click("form.card button[type=submit]").await;
    assert_eq!(admin.path().await, "/ui/admin/accounts/alice?m=done");
    assert_eq!(
        admin
            .client
            .find(Locator::Css("#factor-state"))
            .await
            .unwrap()
            .attr("data-state")
            .await
            .unwrap()
            .as_deref(),
        Some("none")
    );

    // alice signs in with her password alone and is led to enroll.
    let alice = Browser::start(&app).await;
    alice.sign_in("alice", PASSWORD, None).await;
    assert_eq!(alice.path().await, "/ui/account/enroll");
    assert!(
        alice
            .page_text()
            .await
            .contains("requires two-factor authentication")
    );
    alice.photograph("enroll-required").await;
    alice
        .click("form[action='/ui/account/enroll'] button")
        .await;
    let secret = otp::Secret::from_base32(&alice.text("#secret").await.replace(' ', "")).unwrap();
    alice.type_into("#code", &app.code(&secret)).await;
    alice
        .click("form[action='/ui/account/enroll/confirm'] button")
        .await;
    alice.click("#saved").await;
    alice
        .click("form[action='/ui/account/recovery-codes/saved'] button")
        .await;
    assert_eq!(alice.path().await, "/ui/account");

    // The audit log shows it, and the API keys page.
    admin.goto("/ui/admin/audit?account=alice").await;
    let log = admin.page_text().await;
    assert!(
        log.contains("totp.remove") && log.contains("totp.confirm"),
        "{log}"
    );
    admin.photograph("audit").await;
    admin.goto("/ui/admin/keys").await;
    admin.type_into("#key-account", "bob").await;
    admin.type_into("#key-name", "vpn gateway").await;
    admin.click("form[action='/ui/admin/keys'] button").await;
    assert!(admin.text("#new-key").await.starts_with("otpd_"));
    admin.photograph("api-keys").await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver (installed by .ci/run)"]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let token = app.account("alice", &[]).await;
    app.enroll("alice", &token).await;
    let b = Browser::start(&app).await;
    b.sign_in("admin", &app.admin_password, None).await;
    b.goto("/ui/admin/accounts/alice/confirm/reset").await;
    b.client
        .execute(
            "document.querySelector('form.card input[name=csrf]').remove();",
            vec![],
        )
        .await
        .unwrap();
    b.click("form.card button[type=submit]").await;
    assert!(
        b.page_text()
            .await
            .contains("This form has expired or came from another page")
    );
    b.photograph("stale-form").await;
    let status = app
        .call(
            Method::GET,
            "/api/v1/accounts/alice/totp",
            Some(&app.admin.clone()),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(status["state"], "active", "nothing changed");
}
