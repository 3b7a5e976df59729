//! The web pages' handlers over real HTTP: a visitor with a cookie jar of its own (as a
//! browser keeps one) that reads the CSRF token and what a page shows from its HTML. Every
//! message a page can show for bad input is checked here, and that it changed nothing.

use crate::helpers::*;
use otpd_core::Clock;
use proptest::prelude::*;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;

/// A browser without JavaScript: it follows no redirect by itself, keeps cookies, and
/// reads pages as text.
pub struct Visitor<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// A page as received.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub html: String,
}

impl Page {
    /// The `Location` of a redirect.
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        between(&self.html, r#"name="csrf" value=""#, "\"").unwrap_or_default()
    }

    pub fn has(&self, text: &str) -> bool {
        self.html.contains(&html_escape(text))
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('\'', "&#39;")
        .replace('"', "&#34;")
}

/// The address of the page's link with `rel`.
pub fn link_to(html: &str, rel: &str) -> Option<String> {
    let end = html.find(&format!(r#"" rel="{rel}""#))?;
    let start = html[..end].rfind(r#"href=""#)? + 6;
    Some(html[start..end].replace("&amp;", "&"))
}

/// The text between the first `start` and the next `end`.
pub fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_owned())
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Visitor {
            app,
            client: http_client()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        extra: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.app.base, path));
        if !self.cookies.is_empty() {
            let jar = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header("cookie", jar);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(form) = form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(serde_urlencoded::to_string(form).unwrap());
        }
        let response = req.send().await.unwrap();
        for c in response.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (pair, attributes) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            html: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, &[]).await
    }

    /// Posts `form` with the CSRF token of `page`.
    pub async fn post(&mut self, path: &str, page: &Page, form: &[(&str, &str)]) -> Page {
        let csrf = page.csrf();
        let version = between(&page.html, r#"name="version" value=""#, "\"");
        let mut fields = vec![("csrf", csrf.as_str())];
        if let Some(version) = &version {
            fields.push(("version", version.as_str()));
        }
        fields.extend_from_slice(form);
        self.send(Method::POST, path, Some(&fields), &[]).await
    }

    /// Posts `form` as it is, with extra headers.
    pub async fn post_raw(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        self.send(Method::POST, path, Some(form), headers).await
    }

    /// Signs in with a password; returns the page the sign-in led to (not followed).
    pub async fn sign_in(&mut self, username: &str, password: &str) -> Page {
        let form = self.get("/ui/sign-in").await;
        self.post(
            "/ui/sign-in",
            &form,
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Signs in with the password and `code`, expecting to land on the account page.
    pub async fn sign_in_with_code(&mut self, username: &str, code: &str) -> Page {
        let to = self.sign_in(username, PASSWORD).await;
        assert_eq!(to.location(), "/ui/sign-in/code", "{}", to.html);
        let form = self.get("/ui/sign-in/code").await;
        self.post("/ui/sign-in/code", &form, &[("code", code)])
            .await
    }

    pub fn session(&self) -> Option<&String> {
        self.cookies.get("otpd_session")
    }
}

async fn plain_account(app: &TestApp, name: &str) {
    app.account(name, &[]).await;
}

const BAD_CREDENTIALS: &str = "The username or password is not right.";
const STALE: &str =
    "This form has expired or came from another page. Nothing was changed: please try again.";

#[tokio::test]
async fn sign_in_never_says_whether_a_name_exists() {
    let app = spawn_app().await;
    plain_account(&app, "alice").await;
    let mut v = Visitor::new(&app);
    let form = v.get("/ui/sign-in").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.html.contains(r#"autocomplete="current-password""#));
    let wrong = v
        .post(
            "/ui/sign-in",
            &form,
            &[("username", "alice"), ("password", "nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.has(BAD_CREDENTIALS), "{}", wrong.html);
    assert!(wrong.html.contains(r#"value="alice""#), "the name is kept");
    let unknown = v
        .post(
            "/ui/sign-in",
            &form,
            &[("username", "nobody"), ("password", "nope")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.html.replace("alice", "X"),
        unknown.html.replace("nobody", "X"),
        "the same page for an unknown name"
    );
    let empty = v
        .post("/ui/sign-in", &form, &[("username", ""), ("password", "")])
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v.session().is_none());

    let ok = v
        .post(
            "/ui/sign-in",
            &form,
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/ui/account");
    let cookie = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("otpd_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/ui")
    );
    assert!(!cookie.contains("Secure"), "no TLS here");
    let account = v.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.html.contains(r#"data-state="none""#));
    // The sign-in form's token does not work for the signed-in session.
    let stale = v.post("/ui/sign-out", &form, &[]).await;
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    assert!(stale.has(STALE), "{}", stale.html);
    assert_eq!(
        v.get("/ui/account").await.status,
        StatusCode::OK,
        "still signed in"
    );
    // Signing out ends the session.
    let out = v.post("/ui/sign-out", &account, &[]).await;
    assert_eq!(out.location(), "/ui/sign-in?m=signed-out");
    assert!(
        v.get("/ui/sign-in?m=signed-out")
            .await
            .has("You have signed out.")
    );
    let gone = v.get("/ui/account").await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert!(gone.location().starts_with("/ui/sign-in"));
}

#[tokio::test]
async fn cookies_are_secure_under_tls() {
    let app = spawn_app_with(|s| s.tls_self_signed = Some(otpd::config::Switch(true))).await;
    plain_account(&app, "alice").await;
    let mut v = Visitor::new(&app);
    let cert = std::fs::read(app.data_dir().join("tls-cert.pem")).unwrap();
    let port: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    v.client = http_client()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert).unwrap()])
        .resolve("localhost", ([127, 0, 0, 1], port).into())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = v.get("/ui/sign-in").await;
    let anchor = form.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        anchor.starts_with("__Host-otpd_csrf=")
            && anchor.ends_with("; Path=/; HttpOnly; SameSite=Strict; Secure"),
        "{anchor}"
    );
    let ok = v
        .post(
            "/ui/sign-in",
            &form,
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.html);
    let session = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-otpd_session="))
        .unwrap();
    assert!(
        session.ends_with("; Path=/; HttpOnly; SameSite=Strict; Secure"),
        "{session}"
    );
    // The browser sends it back under its prefixed name; the page knows it.
    assert_eq!(v.get("/ui/account").await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let app = spawn_app().await;
    let mut v = Visitor::new(&app);
    for path in ["/ui/sign-in", "/ui/nowhere", "/ui/static/otpd.css"] {
        let page = v.get(path).await;
        let h = &page.headers;
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    assert_eq!(
        v.get("/ui/sign-in").await.headers["cache-control"],
        "no-store"
    );
    assert_eq!(v.get("/ui").await.location(), "/ui/sign-in");
    assert_eq!(v.get("/ui/").await.location(), "/ui");
    let missing = v.get("/ui/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // No inline script or style anywhere: the pages would break under their own policy.
    let page = v.get("/ui/sign-in").await;
    assert!(!page.html.contains("<script>") && !page.html.contains("style="));
}

/// Reads the pending secret and its fingerprint from the enrollment page.
fn pending_secret(page: &Page) -> (otp::Secret, String) {
    let grouped = between(
        &page.html,
        r#"<code id="secret" translate="no">"#,
        "</code>",
    )
    .unwrap();
    let fingerprint = between(&page.html, r#"name="fingerprint" value=""#, "\"").unwrap();
    (
        otp::Secret::from_base32(&grouped.replace(' ', "")).unwrap(),
        fingerprint,
    )
}

fn recovery_codes(page: &Page) -> Vec<String> {
    page.html
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split("</code>").next().unwrap().to_owned())
        .collect()
}

/// Signs `name` in and enrolls through the pages; returns the secret and the codes.
pub async fn enroll_through_pages(
    v: &mut Visitor<'_>,
    app: &TestApp,
) -> (otp::Secret, Vec<String>) {
    let start = v.get("/ui/account/enroll").await;
    let started = v.post("/ui/account/enroll", &start, &[]).await;
    assert_eq!(started.location(), "/ui/account/enroll", "{}", started.html);
    let enroll = v.get("/ui/account/enroll").await;
    let (secret, fingerprint) = pending_secret(&enroll);
    let code = app.code(&secret);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let codes = v
        .post(
            "/ui/account/enroll/confirm",
            &enroll,
            &[("code", &spaced), ("fingerprint", &fingerprint)],
        )
        .await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.html);
    app.clock.advance(30);
    (secret, recovery_codes(&codes))
}

#[tokio::test]
async fn enrolling_shows_the_secret_once_and_refuses_bad_codes() {
    let app = spawn_app().await;
    plain_account(&app, "alice").await;
    let mut v = Visitor::new(&app);
    v.sign_in("alice", PASSWORD).await;
    let account = v.get("/ui/account").await;
    assert_eq!(
        v.post("/ui/account/enroll", &account, &[]).await.status,
        StatusCode::SEE_OTHER
    );
    let enroll = v.get("/ui/account/enroll").await;
    assert_eq!(enroll.headers["cache-control"], "no-store");
    let (secret, fingerprint) = pending_secret(&enroll);
    // The QR code is an inline SVG inside a link that opens the app.
    assert!(
        enroll
            .html
            .contains(r#"<a class="qr" href="otpauth://totp/"#),
        "{}",
        enroll.html
    );
    assert!(enroll.html.contains("<svg"));
    assert!(
        enroll.html.contains(r#"autocomplete="one-time-code""#)
            && enroll.html.contains(r#"inputmode="numeric""#)
    );
    let grouped = between(
        &enroll.html,
        r#"<code id="secret" translate="no">"#,
        "</code>",
    )
    .unwrap();
    assert!(grouped.split(' ').all(|g| g.len() <= 4), "{grouped}");
    assert!(
        !enroll.html.contains("not the usual SHA1"),
        "default parameters"
    );

    // A wrong code: the message beside the field, still pending.
    let wrong = v
        .post(
            "/ui/account/enroll/confirm",
            &enroll,
            &[("code", "000000"), ("fingerprint", &fingerprint)],
        )
        .await;
    let expected_wrong = if app.code(&secret) == "000000" {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    if expected_wrong != StatusCode::OK {
        assert_eq!(wrong.status, expected_wrong);
        assert!(wrong.html.contains(r#"id="code-error""#), "{}", wrong.html);
        assert!(wrong.has("That code is not right."));
    }
    let empty = v
        .post(
            "/ui/account/enroll/confirm",
            &enroll,
            &[("code", " "), ("fingerprint", &fingerprint)],
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(empty.has("Please fill in this field."));

    // A second tab starts again: the first tab's page no longer confirms anything.
    let account = v.get("/ui/account").await;
    v.post("/ui/account/enroll", &account, &[]).await;
    let replaced = v
        .post(
            "/ui/account/enroll/confirm",
            &enroll,
            &[("code", &app.code(&secret)), ("fingerprint", &fingerprint)],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::CONFLICT);
    assert!(
        replaced.has("A newer set-up was started (in another tab?)"),
        "{}",
        replaced.html
    );
    let newer = v.get("/ui/account/enroll").await;
    let (secret, fingerprint) = pending_secret(&newer);
    // It expires: then nothing is pending, and signing in is not blocked.
    app.clock.advance(901);
    let expired = v
        .post(
            "/ui/account/enroll/confirm",
            &newer,
            &[("code", &app.code(&secret)), ("fingerprint", &fingerprint)],
        )
        .await;
    assert_eq!(expired.status, StatusCode::NOT_FOUND);
    assert!(expired.has("This set-up expired or was finished elsewhere."));
    let mut other = Visitor::new(&app);
    assert_eq!(
        other.sign_in("alice", PASSWORD).await.location(),
        "/ui/account"
    );

    // Through to the end: the codes page, then the account page counts them.
    let (_, codes) = enroll_through_pages(&mut v, &app).await;
    assert_eq!(codes.len(), 10);
    let account = v.get("/ui/account").await;
    assert!(
        account.html.contains(r#"data-state="active""#),
        "{}",
        account.html
    );
    assert!(account.html.contains(r#"<dd id="codes-left">10</dd>"#));
    // The other browser's session ended with the new second factor.
    assert_eq!(other.get("/ui/account").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_recovery_codes_page_offers_download_and_asks_for_saving() {
    let app = spawn_app().await;
    plain_account(&app, "alice").await;
    let mut v = Visitor::new(&app);
    v.sign_in("alice", PASSWORD).await;
    let account = v.get("/ui/account").await;
    v.post("/ui/account/enroll", &account, &[]).await;
    let enroll = v.get("/ui/account/enroll").await;
    let (secret, fingerprint) = pending_secret(&enroll);
    let codes = v
        .post(
            "/ui/account/enroll/confirm",
            &enroll,
            &[("code", &app.code(&secret)), ("fingerprint", &fingerprint)],
        )
        .await;
    assert_eq!(codes.headers["cache-control"], "no-store");
    // The file is made in the browser: no address holds the codes (a data: URL would stay
    // in the download history).
    assert!(
        codes
            .html
            .contains(r#"data-filename="otpd-recovery-codes.txt""#)
    );
    assert!(!codes.html.contains("data:text"));
    assert!(
        codes
            .html
            .contains(r#"type="checkbox" id="saved" name="saved" value="yes" required"#)
    );
    // Leaving without ticking the box says so.
    let unticked = v
        .post("/ui/account/recovery-codes/saved", &codes, &[])
        .await;
    assert_eq!(unticked.location(), "/ui/account?m=codes-not-confirmed");
    let ticked = v
        .post(
            "/ui/account/recovery-codes/saved",
            &codes,
            &[("saved", "yes")],
        )
        .await;
    assert_eq!(ticked.location(), "/ui/account");
    assert!(
        v.get("/ui/account?m=codes-not-confirmed")
            .await
            .has("You did not confirm that you saved")
    );
}

#[tokio::test]
async fn the_second_step_takes_a_code_or_a_recovery_code_once() {
    let app = spawn_app().await;
    let token = app.account("alice", &[]).await;
    let (secret, codes) = app.enroll("alice", &token).await;
    let mut v = Visitor::new(&app);
    let to = v.sign_in("alice", PASSWORD).await;
    assert_eq!(to.location(), "/ui/sign-in/code");
    assert!(v.session().is_none(), "no session before the second factor");
    let form = v.get("/ui/sign-in/code").await;
    assert!(form.html.contains(r#"autocomplete="one-time-code""#));
    let wrong = v
        .post("/ui/sign-in/code", &form, &[("code", "12345678901")])
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.html
    );
    assert!(wrong.has("That code is not right."), "{}", wrong.html);
    let empty = v.post("/ui/sign-in/code", &form, &[("code", "")]).await;
    assert!(empty.has("Please fill in this field."));
    // A code, then the same code again in another browser: replayed.
    let code = app.code(&secret);
    let ok = v.post("/ui/sign-in/code", &form, &[("code", &code)]).await;
    assert_eq!(ok.location(), "/ui/account", "{}", ok.html);
    let mut other = Visitor::new(&app);
    other.sign_in("alice", PASSWORD).await;
    let form2 = other.get("/ui/sign-in/code").await;
    let replay = other
        .post("/ui/sign-in/code", &form2, &[("code", &code)])
        .await;
    assert!(replay.has("That code was used already."), "{}", replay.html);
    // A recovery code works once, in lower case with spaces too.
    let recovery = codes[0].to_lowercase();
    let ok = other
        .post("/ui/sign-in/code", &form2, &[("code", &recovery)])
        .await;
    assert_eq!(ok.location(), "/ui/account", "{}", ok.html);
    let mut third = Visitor::new(&app);
    let again = third.sign_in_with_code("alice", &codes[0]).await;
    assert!(again.has("That code is not right."), "{}", again.html);
    // The challenge lapses: back to the password.
    app.clock.advance(301);
    let form3 = third.get("/ui/sign-in/code").await;
    let late = third
        .post("/ui/sign-in/code", &form3, &[("code", &app.code(&secret))])
        .await;
    assert_eq!(late.location(), "/ui/sign-in?m=challenge-expired");
    assert!(
        third
            .get(late.location())
            .await
            .has("Your sign-in took too long")
    );
}

#[tokio::test]
async fn wrong_codes_lock_the_authenticator_and_the_page_says_so() {
    let app = spawn_app().await;
    let token = app.account("alice", &[]).await;
    let (secret, _) = app.enroll("alice", &token).await;
    app.call(
        Method::PATCH,
        "/api/v1/policy",
        Some(&app.admin.clone()),
        Some(json!({"max_failures": 2})),
        StatusCode::OK,
    )
    .await;
    let mut v = Visitor::new(&app);
    v.sign_in("alice", PASSWORD).await;
    let form = v.get("/ui/sign-in/code").await;
    let wrong = app.wrong_code(&secret);
    for _ in 0..2 {
        v.post("/ui/sign-in/code", &form, &[("code", wrong)]).await;
    }
    let locked = v
        .post("/ui/sign-in/code", &form, &[("code", &app.code(&secret))])
        .await;
    assert!(locked.has("Too many wrong codes"), "{}", locked.html);
    assert!(v.session().is_none());
}

#[tokio::test]
async fn forms_without_their_token_or_from_elsewhere_change_nothing() {
    let app = spawn_app().await;
    let token = app.account("alice", &[]).await;
    app.enroll("alice", &token).await;
    let mut v = Visitor::new(&app);
    let mut admin = Visitor::new(&app);
    admin.sign_in("admin", &app.admin_password).await;
    let page = admin.get("/ui/admin/accounts/alice").await;
    let csrf = page.csrf();
    // No token, a wrong token, another visitor's token, a cross-site request.
    for (form, headers) in [
        (vec![], vec![]),
        (vec![("csrf", "forged")], vec![]),
        (
            vec![("csrf", csrf.as_str())],
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            vec![("csrf", csrf.as_str())],
            vec![("origin", "https://evil.example")],
        ),
    ] {
        let refused = admin
            .post_raw("/ui/admin/accounts/alice/reset", &form, &headers)
            .await;
        assert_eq!(
            refused.status,
            StatusCode::FORBIDDEN,
            "{form:?} {headers:?}"
        );
        assert!(refused.has(STALE), "{}", refused.html);
    }
    let other = v.get("/ui/sign-in").await;
    let theirs = admin
        .post_raw(
            "/ui/admin/accounts/alice/reset",
            &[("csrf", &other.csrf())],
            &[],
        )
        .await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    let s = app
        .call(
            Method::GET,
            "/api/v1/accounts/alice/totp",
            Some(&token),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(s["state"], "active", "nothing changed");
    // The same origin, with the token: done.
    let host = app.base.trim_start_matches("http://").to_owned();
    let origin = format!("http://{host}");
    let done = admin
        .post_raw(
            "/ui/admin/accounts/alice/reset",
            &[("csrf", &csrf)],
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    app.call(
        Method::GET,
        "/api/v1/accounts/alice/totp",
        Some(&app.admin.clone()),
        None,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn removing_asks_for_a_fresh_code_and_an_enforced_policy_refuses_it() {
    let app = spawn_app().await;
    plain_account(&app, "alice").await;
    let mut v = Visitor::new(&app);
    v.sign_in("alice", PASSWORD).await;
    let (secret, codes) = enroll_through_pages(&mut v, &app).await;
    // Past the step-up window, removal asks for a code on the page.
    app.clock.advance(301);
    let confirm = v.get("/ui/account/confirm/remove").await;
    assert!(
        !confirm.html.contains(r#"id="code""#),
        "no code asked at first"
    );
    let ask = v.post("/ui/account/remove", &confirm, &[]).await;
    assert_eq!(ask.status, StatusCode::FORBIDDEN);
    assert!(ask.html.contains(r#"id="code""#));
    assert!(
        ask.has("For this change, enter a current code"),
        "{}",
        ask.html
    );
    let wrong = app.wrong_code(&secret);
    let refused = v.post("/ui/account/remove", &ask, &[("code", wrong)]).await;
    assert!(refused.has("That code is not right."), "{}", refused.html);
    assert!(
        v.get("/ui/account")
            .await
            .html
            .contains(r#"data-state="active""#)
    );
    // Regenerating codes in the same way: the old set is void.
    let regen = v.get("/ui/account/confirm/regenerate").await;
    let ask = v.post("/ui/account/regenerate", &regen, &[]).await;
    let fresh = v
        .post(
            "/ui/account/regenerate",
            &ask,
            &[("code", &app.code(&secret))],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.html);
    let new_codes = recovery_codes(&fresh);
    assert_eq!(new_codes.len(), 10);
    assert!(!new_codes.contains(&codes[0]));
    app.clock.advance(30);

    // Under an enforced policy removal is refused, and says why.
    app.call(
        Method::PATCH,
        "/api/v1/policy",
        Some(&app.admin.clone()),
        Some(json!({"enforced": true})),
        StatusCode::OK,
    )
    .await;
    let confirm = v.get("/ui/account/confirm/remove").await;
    let no = v
        .post(
            "/ui/account/remove",
            &confirm,
            &[("code", &app.code(&secret))],
        )
        .await;
    assert_eq!(no.status, StatusCode::FORBIDDEN, "{}", no.html);
    assert!(
        no.has("Your organisation requires two-factor authentication, so the authenticator cannot be removed."),
        "{}",
        no.html
    );
    app.clock.advance(30);
    app.call(
        Method::PATCH,
        "/api/v1/policy",
        Some(&app.admin.clone()),
        Some(json!({"enforced": false})),
        StatusCode::OK,
    )
    .await;
    let confirm = v.get("/ui/account/confirm/remove").await;
    let removed = v
        .post(
            "/ui/account/remove",
            &confirm,
            &[("code", &app.code(&secret))],
        )
        .await;
    assert_eq!(
        removed.location(),
        "/ui/account?m=removed",
        "{}",
        removed.html
    );
    assert!(
        v.get("/ui/account?m=removed")
            .await
            .html
            .contains(r#"data-state="none""#)
    );
}

#[tokio::test]
async fn an_enforced_policy_leads_a_new_account_to_enrolling() {
    let app = spawn_app().await;
    plain_account(&app, "alice").await;
    app.call(
        Method::PATCH,
        "/api/v1/policy",
        Some(&app.admin.clone()),
        Some(json!({"enforced": true})),
        StatusCode::OK,
    )
    .await;
    let mut v = Visitor::new(&app);
    let to = v.sign_in("alice", PASSWORD).await;
    assert_eq!(to.location(), "/ui/account/enroll");
    assert_eq!(v.get("/ui/account").await.location(), "/ui/account/enroll");
    let enroll = v.get("/ui/account/enroll").await;
    assert!(enroll.has("Your organisation requires two-factor authentication."));
    // It may sign out, but is offered no other page.
    assert!(enroll.html.contains(r#"action="/ui/sign-out""#));
    assert!(!enroll.html.contains(r#"href="/ui/account""#));
    // Nothing else is open to it.
    assert_eq!(
        v.get("/ui/admin/accounts").await.status,
        StatusCode::FORBIDDEN
    );
    let (_, codes) = enroll_through_pages(&mut v, &app).await;
    assert_eq!(codes.len(), 10);
    let account = v.get("/ui/account").await;
    assert_eq!(account.status, StatusCode::OK, "a full session now");
}

#[tokio::test]
async fn unusual_parameters_are_pointed_out_and_renewal_shows_the_new_secret_once() {
    let app = spawn_app().await;
    plain_account(&app, "alice").await;
    app.call(
        Method::PATCH,
        "/api/v1/policy",
        Some(&app.admin.clone()),
        Some(json!({"digits": 8})),
        StatusCode::OK,
    )
    .await;
    let mut v = Visitor::new(&app);
    v.sign_in("alice", PASSWORD).await;
    let start = v.get("/ui/account/enroll").await;
    v.post("/ui/account/enroll", &start, &[]).await;
    let enroll = v.get("/ui/account/enroll").await;
    assert!(enroll.has("These settings are not the usual SHA1, 6 digits, 30 seconds."));
    assert!(enroll.html.contains("<dd>8</dd>"));
    let (secret, fingerprint) = pending_secret(&enroll);
    let code = otp::Totp::new(
        otp::Algorithm::Sha1,
        otp::Digits::new(8).unwrap(),
        otp::Interval::default(),
    )
    .generate(&secret, u64::try_from(app.clock.now()).unwrap())
    .to_string();
    let codes = v
        .post(
            "/ui/account/enroll/confirm",
            &enroll,
            &[("code", &code), ("fingerprint", &fingerprint)],
        )
        .await;
    assert_eq!(codes.status, StatusCode::OK, "{}", codes.html);
    // Within the step-up window a renewal needs no further code; its secret is shown once.
    let confirm = v.get("/ui/account/confirm/renew").await;
    let renewed = v.post("/ui/account/renew", &confirm, &[]).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.html);
    assert_eq!(renewed.headers["cache-control"], "no-store");
    let new_secret = between(
        &renewed.html,
        r#"<code id="secret" translate="no">"#,
        "</code>",
    )
    .unwrap();
    assert_ne!(
        otp::Secret::from_base32(&new_secret.replace(' ', "")).unwrap(),
        secret
    );
    assert!(renewed.has("The old secret no longer works."));
    let account = v.get("/ui/account").await;
    assert!(!account.html.contains(&new_secret), "shown once");
    // The same form sent again (a reload) changes nothing more.
    let again = v.post("/ui/account/renew", &confirm, &[]).await;
    assert_eq!(
        again.location(),
        "/ui/account?m=factor-changed",
        "{}",
        again.html
    );
    let account = v.get("/ui/account?m=factor-changed").await;
    assert!(account.has("Nothing more was changed."));
    assert!(account.html.contains(r#"class="problem""#));
}

#[tokio::test]
async fn sign_out_everywhere_ends_the_other_browsers_sessions() {
    let app = spawn_app().await;
    plain_account(&app, "alice").await;
    let mut a = Visitor::new(&app);
    let mut b = Visitor::new(&app);
    a.sign_in("alice", PASSWORD).await;
    b.sign_in("alice", PASSWORD).await;
    let page = a.get("/ui/account").await;
    assert!(page.html.contains("this session"));
    let out = a.post("/ui/sign-out/everywhere", &page, &[]).await;
    assert_eq!(out.location(), "/ui/sign-in?m=signed-out");
    assert_eq!(a.get("/ui/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(b.get("/ui/account").await.status, StatusCode::SEE_OTHER);
    // The activity lists sign-ins, with where from.
    a.sign_in("alice", "wrong").await;
    a.sign_in("alice", PASSWORD).await;
    let page = a.get("/ui/account").await;
    assert!(
        page.html
            .contains("<td>Sign-in with password</td><td>failure</td>"),
        "{}",
        page.html
    );
    assert!(page.html.contains("Signed out everywhere"));
    assert!(page.html.contains("127.0.0.1"));
}

#[tokio::test]
async fn the_console_searches_pages_and_acts_as_the_core_allows() {
    let app = spawn_app().await;
    for i in 0..55 {
        app.call(
            Method::POST,
            "/api/v1/accounts",
            Some(&app.admin.clone()),
            Some(json!({"username": format!("user{i:02}"), "password": PASSWORD})),
            StatusCode::CREATED,
        )
        .await;
    }
    let token = app.account("alice", &[]).await;
    app.enroll("alice", &token).await;
    app.account("reader", &["readonly_admin"]).await;
    let mut admin = Visitor::new(&app);
    admin.sign_in("admin", &app.admin_password).await;
    let list = admin.get("/ui/admin/accounts?q=user").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(
        list.html
            .matches("<td><a href=\"/ui/admin/accounts/user")
            .count(),
        50
    );
    let next = link_to(&list.html, "next").unwrap();
    assert!(next.contains("after=user49"), "{next}");
    let second = admin.get(&next).await;
    assert_eq!(
        second
            .html
            .matches("<td><a href=\"/ui/admin/accounts/user")
            .count(),
        5
    );
    let alice = admin.get("/ui/admin/accounts?q=ali").await;
    assert!(
        alice.html.contains(r#"<td data-state="active">"#),
        "{}",
        alice.html
    );
    let long = admin
        .get(&format!("/ui/admin/accounts?q={}", "a".repeat(65)))
        .await;
    assert_eq!(long.status, StatusCode::OK);
    assert!(long.html.contains("class=\"problem\""));

    // A read-only admin reads, but its actions are refused by the core.
    let mut reader = Visitor::new(&app);
    reader.sign_in("reader", PASSWORD).await;
    let page = reader.get("/ui/admin/accounts/alice").await;
    assert_eq!(page.status, StatusCode::OK);
    let confirm = reader.get("/ui/admin/accounts/alice/confirm/reset").await;
    let refused = reader
        .post("/ui/admin/accounts/alice/reset", &confirm, &[])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.has("You are not allowed to do this."));
    // A plain account sees no console at all.
    let mut plain = Visitor::new(&app);
    plain.sign_in("user00", PASSWORD).await;
    let no = plain.get("/ui/admin/accounts").await;
    assert_eq!(no.status, StatusCode::FORBIDDEN);
    assert!(no.has("You are not allowed to do this."));

    // Lock, unlock, revoke sessions, switch off and on, reset: each confirmed, each audited.
    for action in [
        "lock",
        "unlock",
        "revoke-sessions",
        "disable",
        "enable",
        "reset",
    ] {
        let confirm = admin
            .get(&format!("/ui/admin/accounts/alice/confirm/{action}"))
            .await;
        assert_eq!(confirm.status, StatusCode::OK, "{action}");
        let done = admin
            .post(&format!("/ui/admin/accounts/alice/{action}"), &confirm, &[])
            .await;
        assert_eq!(
            done.location(),
            "/ui/admin/accounts/alice?m=done",
            "{action}: {}",
            done.html
        );
    }
    let unknown = admin.get("/ui/admin/accounts/nobody").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.has("There is no such account or item."));
    let confirm = admin.get("/ui/admin/accounts/nobody/confirm/lock").await;
    let missing = admin
        .post("/ui/admin/accounts/nobody/lock", &confirm, &[])
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let audit = admin
        .get("/ui/admin/audit?account=alice&outcome=success")
        .await;
    for action in [
        "account.lock",
        "account.unlock",
        "session.revoke_all",
        "totp.update",
        "totp.remove",
    ] {
        assert!(
            audit.html.contains(&format!("<td>{action}</td>")),
            "{action}: {}",
            audit.html
        );
    }
    assert!(audit.html.contains("<td>web</td>"));
    for odd in [
        "/ui/admin/audit?page=abc",
        "/ui/admin/audit?page=-1&outcome=maybe",
        "/ui/admin/audit?page=99999999999",
    ] {
        let page = admin.get(odd).await;
        assert_eq!(page.status, StatusCode::OK, "{odd}");
    }
    let garbled = admin.get("/ui/admin/accounts/%FF%FE").await;
    assert_eq!(garbled.status, StatusCode::NOT_FOUND);
    assert!(garbled.html.contains("<!doctype html>"));
    let bad_day = admin.get("/ui/admin/audit?since=yesterday").await;
    assert_eq!(bad_day.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_day.html.contains(r#"id="since-error""#));
    let failures = admin
        .get("/ui/admin/audit?outcome=failure&action=account.lock")
        .await;
    assert!(!failures.html.contains("<td>account.lock</td>"));

    // Creating an account: the core's refusal beside the field, then success.
    let list = admin.get("/ui/admin/accounts").await;
    let taken = admin
        .post(
            "/ui/admin/accounts",
            &list,
            &[
                ("username", "alice"),
                ("full_name", "A"),
                ("email", ""),
                ("password", ""),
                ("role", ""),
            ],
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.html);
    assert!(
        taken.html.contains(r#"id="username-error""#),
        "{}",
        taken.html
    );
    let bad = admin
        .post(
            "/ui/admin/accounts",
            &list,
            &[("username", "bad name!"), ("password", "")],
        )
        .await;
    assert!(bad.html.contains(r#"id="username-error""#), "{}", bad.html);
    let made = admin
        .post(
            "/ui/admin/accounts",
            &list,
            &[
                ("username", "carol"),
                ("full_name", "Carol"),
                ("password", PASSWORD),
                ("role", "verifier"),
            ],
        )
        .await;
    assert_eq!(made.location(), "/ui/admin/accounts/carol", "{}", made.html);
}

#[tokio::test]
async fn the_policy_page_shows_the_cores_errors_beside_the_fields() {
    let app = spawn_app().await;
    let mut admin = Visitor::new(&app);
    admin.sign_in("admin", &app.admin_password).await;
    let page = admin.get("/ui/admin/policy").await;
    assert!(
        page.html.contains(r#"id="window" name="window" value="1""#),
        "{}",
        page.html
    );
    let fields = |window: &'static str, digits: &'static str| {
        vec![
            ("self_enrollment", "on"),
            ("second_factor_at_login", "on"),
            ("window", window),
            ("digits", digits),
            ("interval", "30"),
            ("algorithm", "SHA1"),
            ("issuer", "Example"),
            ("max_failures", "10"),
            ("lockout_secs", "300"),
            ("recovery_code_count", "10"),
            ("step_up_secs", "300"),
            ("enrollment_secs", "900"),
            ("session_secs", "43200"),
            ("challenge_secs", "300"),
        ]
    };
    let bad = admin
        .post("/ui/admin/policy", &page, &fields("11", "6"))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.has("The policy was not saved"), "{}", bad.html);
    assert!(
        bad.html.contains(
            r#"<p id="window-error" class="field-error" role="alert">must be between 0 and 10</p>"#
        ),
        "{}",
        bad.html
    );
    let nan = admin
        .post("/ui/admin/policy", &page, &fields("1", "six"))
        .await;
    assert!(nan.html.contains(
        r#"<p id="digits-error" class="field-error" role="alert">must be a whole number</p>"#
    ));
    assert!(
        nan.html.contains(r#"value="six""#),
        "the typed value is kept"
    );
    let p = app
        .call(
            Method::GET,
            "/api/v1/policy",
            Some(&app.admin.clone()),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(p["issuer"], "otpd", "nothing saved");
    let ok = admin
        .post("/ui/admin/policy", &page, &fields("2", "6"))
        .await;
    assert_eq!(
        ok.location(),
        "/ui/admin/policy?m=policy-saved",
        "{}",
        ok.html
    );
    let p = app
        .call(
            Method::GET,
            "/api/v1/policy",
            Some(&app.admin.clone()),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        (p["issuer"].as_str(), p["window"].as_u64()),
        (Some("Example"), Some(2))
    );
    // A read-only admin reads the policy; its save is the core's to refuse.
    app.account("reader", &["readonly_admin"]).await;
    let mut reader = Visitor::new(&app);
    reader.sign_in("reader", PASSWORD).await;
    let page = reader.get("/ui/admin/policy").await;
    assert!(page.html.contains(r#"value="Example""#));
    let refused = reader
        .post("/ui/admin/policy", &page, &fields("3", "6"))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.has("You are not allowed to do this."),
        "{}",
        refused.html
    );
}

#[tokio::test]
async fn api_keys_are_shown_once_and_revoked() {
    let app = spawn_app().await;
    app.account("svc", &[]).await;
    let mut admin = Visitor::new(&app);
    admin.sign_in("admin", &app.admin_password).await;
    let page = admin.get("/ui/admin/keys").await;
    assert!(page.has("No API keys."));
    let made = admin
        .post(
            "/ui/admin/keys",
            &page,
            &[("account", "svc"), ("name", "vpn")],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.html);
    let key = between(
        &made.html,
        r#"<code id="new-key" translate="no">"#,
        "</code>",
    )
    .unwrap();
    let me = app
        .call(Method::GET, "/api/v1/me", Some(&key), None, StatusCode::OK)
        .await;
    assert_eq!(me["username"], "svc");
    let listed = admin.get("/ui/admin/keys").await;
    assert!(!listed.html.contains(&key), "shown once");
    let bad = admin
        .post(
            "/ui/admin/keys",
            &listed,
            &[("account", "nobody"), ("name", "x")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
    assert!(bad.html.contains(r#"id="key-error""#));
    // Revoking is confirmed on a page of its own, which names the key.
    let id = between(&listed.html, r#"href="/ui/admin/keys/"#, "/confirm\"").unwrap();
    let confirm = admin.get(&format!("/ui/admin/keys/{id}/confirm")).await;
    assert!(confirm.html.contains("vpn (svc)"), "{}", confirm.html);
    let unknown = admin.get("/ui/admin/keys/nope/confirm").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let revoked = admin
        .post(&format!("/ui/admin/keys/{id}/revoke"), &confirm, &[])
        .await;
    assert_eq!(revoked.location(), "/ui/admin/keys?m=key-revoked");
    app.call(
        Method::GET,
        "/api/v1/me",
        Some(&key),
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn sign_in_attempts_take_from_the_login_budget() {
    let app = spawn_app_with(|s| {
        s.rate_limits = Some(otpd::config::Switch(true));
        s.login_rate = Some(4); // the test's own API login of `admin` takes one
    })
    .await;
    let mut v = Visitor::new(&app);
    let form = v.get("/ui/sign-in").await;
    for _ in 0..3 {
        let r = v
            .post(
                "/ui/sign-in",
                &form,
                &[("username", "x"), ("password", "y")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Showing the form costs nothing; another attempt is refused before any password check.
    assert_eq!(v.get("/ui/sign-in").await.status, StatusCode::OK);
    let r = v
        .post(
            "/ui/sign-in",
            &form,
            &[("username", "admin"), ("password", &app.admin_password)],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.contains_key("retry-after"));
    assert!(r.has("Too many attempts from your network."));
    assert!(v.session().is_none());
}

#[tokio::test]
async fn refused_forms_cost_the_address_nothing_and_refusals_are_pages() {
    let app = spawn_app_with(|s| {
        s.rate_limits = Some(otpd::config::Switch(true));
        s.failure_rate = Some(3);
    })
    .await;
    plain_account(&app, "alice").await;
    let mut v = Visitor::new(&app);
    v.get("/ui/sign-in").await;
    // Forged forms, as another site could make this browser send: refused, never counted.
    for _ in 0..6 {
        let r = v
            .post_raw(
                "/ui/sign-out",
                &[("csrf", "x")],
                &[("sec-fetch-site", "cross-site")],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(v.get("/ui/sign-in").await.status, StatusCode::OK);
    // Wrong methods and oversized bodies are pages too.
    let wrong_method = v.get("/ui/sign-out").await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.html.contains("<!doctype html>"));
    assert!(wrong_method.headers.contains_key("content-security-policy"));
    let form = v.get("/ui/sign-in").await;
    let huge = "a".repeat(2 << 20);
    let r = v.post("/ui/sign-in", &form, &[("username", &huge)]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.has("What was sent is too large."));
    // A plain account's refusals do count; the address's refusal is a page with the headers.
    v.sign_in("alice", PASSWORD).await;
    for _ in 0..3 {
        assert_eq!(
            v.get("/ui/admin/accounts").await.status,
            StatusCode::FORBIDDEN
        );
    }
    let spent = v.get("/ui/admin/accounts").await;
    assert_eq!(spent.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(spent.headers.contains_key("content-security-policy"));
    assert_eq!(spent.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn a_new_sign_in_ends_the_previous_session_and_planted_cookies_count_for_nothing() {
    let app = spawn_app().await;
    plain_account(&app, "alice").await;
    let mut v = Visitor::new(&app);
    v.sign_in("alice", PASSWORD).await;
    let first = v.session().unwrap().clone();
    app.call(
        Method::GET,
        "/api/v1/me",
        Some(&first),
        None,
        StatusCode::OK,
    )
    .await;
    // Signed in, the sign-in page leads to the account; a sign-in posted anyway (from a
    // page with this session's token) replaces the session, and ends the old one.
    assert_eq!(v.get("/ui/sign-in").await.location(), "/ui/account");
    let account = v.get("/ui/account").await;
    let again = v
        .post(
            "/ui/sign-in",
            &account,
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(again.location(), "/ui/account");
    assert_ne!(v.session().unwrap(), &first);
    app.call(
        Method::GET,
        "/api/v1/me",
        Some(&first),
        None,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // A second otpd_session beside the real one (a planted copy): neither counts.
    let real = v.session().unwrap().clone();
    let bob = app.account("bob", &[]).await;
    let r = v
        .client
        .get(format!("{}/ui/account", app.base))
        .header("cookie", format!("otpd_session={bob}; otpd_session={real}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn an_admin_acting_on_its_own_factor_is_asked_for_a_code() {
    let app = spawn_app().await;
    let mut admin = Visitor::new(&app);
    admin.sign_in("admin", &app.admin_password).await;
    let (secret, _) = enroll_through_pages(&mut admin, &app).await;
    app.clock.advance(301);
    let confirm = admin.get("/ui/admin/accounts/admin/confirm/disable").await;
    let ask = admin
        .post("/ui/admin/accounts/admin/disable", &confirm, &[])
        .await;
    assert_eq!(ask.status, StatusCode::FORBIDDEN);
    assert!(ask.html.contains(r#"id="code""#), "{}", ask.html);
    let done = admin
        .post(
            "/ui/admin/accounts/admin/disable",
            &ask,
            &[("code", &app.code(&secret))],
        )
        .await;
    assert_eq!(
        done.location(),
        "/ui/admin/accounts/admin?m=done",
        "{}",
        done.html
    );
}

#[tokio::test]
async fn a_password_is_changed_with_the_current_one_or_a_fresh_code() {
    let app = spawn_app().await;
    plain_account(&app, "alice").await;
    let mut v = Visitor::new(&app);
    let mut other = Visitor::new(&app);
    v.sign_in("alice", PASSWORD).await;
    other.sign_in("alice", PASSWORD).await;
    let form = v.get("/ui/account/password").await;
    assert!(form.html.contains(r#"autocomplete="new-password""#));
    let new = "a much better passphrase";
    let differ = v
        .post(
            "/ui/account/password",
            &form,
            &[("current", PASSWORD), ("new", new), ("repeat", "other")],
        )
        .await;
    assert_eq!(differ.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(differ.html.contains(r#"id="repeat-error""#));
    let wrong = v
        .post(
            "/ui/account/password",
            &form,
            &[("current", "wrong"), ("new", new), ("repeat", new)],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(
        wrong.has("The current password is not right."),
        "{}",
        wrong.html
    );
    let missing = v
        .post(
            "/ui/account/password",
            &form,
            &[("new", new), ("repeat", new)],
        )
        .await;
    assert!(
        missing.html.contains(r#"id="current-error""#),
        "{}",
        missing.html
    );
    let short = v
        .post(
            "/ui/account/password",
            &form,
            &[("current", PASSWORD), ("new", "short"), ("repeat", "short")],
        )
        .await;
    assert!(short.html.contains(r#"id="new-error""#), "{}", short.html);
    let done = v
        .post(
            "/ui/account/password",
            &form,
            &[("current", PASSWORD), ("new", new), ("repeat", new)],
        )
        .await;
    assert_eq!(
        done.location(),
        "/ui/account?m=password-changed",
        "{}",
        done.html
    );
    assert_eq!(
        v.get("/ui/account").await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        other.get("/ui/account").await.status,
        StatusCode::SEE_OTHER,
        "others end"
    );
    assert_eq!(
        Visitor::new(&app).sign_in("alice", new).await.location(),
        "/ui/account"
    );

    // With an authenticator, a fresh code instead of the current password.
    let (secret, _) = enroll_through_pages(&mut v, &app).await;
    app.clock.advance(301);
    let form = v.get("/ui/account/password").await;
    let ask = v
        .post(
            "/ui/account/password",
            &form,
            &[("new", PASSWORD), ("repeat", PASSWORD)],
        )
        .await;
    assert_eq!(ask.status, StatusCode::FORBIDDEN);
    assert!(ask.html.contains(r#"id="code-hint""#), "{}", ask.html);
    let done = v
        .post(
            "/ui/account/password",
            &ask,
            &[
                ("new", PASSWORD),
                ("repeat", PASSWORD),
                ("code", &app.code(&secret)),
            ],
        )
        .await;
    assert_eq!(
        done.location(),
        "/ui/account?m=password-changed",
        "{}",
        done.html
    );
}

/// The form routes, with the fields their forms carry.
const POSTS: [&str; 15] = [
    "/ui/sign-in",
    "/ui/account/password",
    "/ui/sign-in/code",
    "/ui/sign-out",
    "/ui/sign-out/everywhere",
    "/ui/account/enroll",
    "/ui/account/enroll/confirm",
    "/ui/account/recovery-codes/saved",
    "/ui/account/remove",
    "/ui/account/regenerate",
    "/ui/admin/accounts",
    "/ui/admin/accounts/alice/reset",
    "/ui/admin/policy",
    "/ui/admin/keys",
    "/ui/admin/keys/x/revoke",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary bytes and arbitrary fields, with a valid token, to every form: never a
    /// server error, always a page.
    #[test]
    fn no_form_input_breaks_a_page(
        route in 0..POSTS.len(),
        raw in proptest::collection::vec(any::<u8>(), 0..200),
        fields in proptest::collection::vec(("[a-z_]{1,12}", ".{0,40}"), 0..6),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let app = shared_app().await;
            let mut v = Visitor::new(app);
            v.sign_in("admin", &app.admin_password).await;
            let page = v.get("/ui/account").await;
            let csrf = page.csrf();
            let mut form: Vec<(&str, &str)> = vec![("csrf", &csrf)];
            form.extend(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let with_fields = v.post_raw(POSTS[route], &form, &[]).await;
            assert!(with_fields.status.as_u16() < 500, "{} {:?}: {}", POSTS[route], fields, with_fields.html);
            assert!(with_fields.status.is_redirection() || with_fields.html.contains("<!doctype html>"));
            let mut req = v.client.post(format!("{}{}", app.base, POSTS[route]))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(raw.clone());
            if let Some(s) = v.session() {
                req = req.header("cookie", format!("otpd_session={s}"));
            }
            let r = req.send().await.unwrap();
            assert!(r.status().as_u16() < 500, "{}: {}", POSTS[route], r.status());
        });
    }
}

/// One server for the property test's cases (each case builds its own runtime, so the
/// server runs on a thread of its own).
async fn shared_app() -> &'static TestApp {
    static APP: std::sync::OnceLock<&'static TestApp> = std::sync::OnceLock::new();
    if let Some(app) = APP.get() {
        return app;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let app: &'static TestApp = Box::leak(Box::new(spawn_app().await));
            app.account("alice", &[]).await;
            tx.send(app).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let app = rx.recv().unwrap();
    APP.get_or_init(|| app)
}
