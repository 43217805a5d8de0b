//! The dashboard in a real browser: Debian's `chromium`, driven through
//! `chromedriver` with the W3C WebDriver JSON protocol (spoken directly
//! with `ureq`), against the real server on 127.0.0.1:0 over TLS.
//!
//! One browser session logs in as each role (admin, gestionnaire,
//! auditeur) through the login form, walks every page, uses the machine
//! filter, a bulk action (managers) and the CSV export, saves a PNG
//! screenshot of each page under `target/browser-screenshots/` and runs
//! axe-core with the WCAG 2.1 A/AA rules on each page: any serious or
//! critical violation fails the test.
//!
//! Skipped, with a message, only when chromium or chromedriver is not
//! installed or cannot start (`scripts/install-deps.sh` installs them and
//! axe-core). A missing axe-core fails: it is fetched by the same script.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Fixture, Server, UAI, cli, enroll};
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The WCAG 2.1 A/AA rule tags axe runs.
const TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
/// The school out of the non-admin users' scope.
const OTHER: &str = "0750001U";

/// chromedriver, killed on drop.
struct Driver {
    child: Child,
    base: String,
    http: ureq::Agent,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session, deleted on drop.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
}

impl Driver {
    /// Starts chromedriver on a free port; `Err` says why it could not.
    fn start() -> Result<Driver, String> {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(bin).exists() {
                return Err(format!("{bin} is not installed"));
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        // Chromium on Linux takes its interface language (date fields'
        // day/month order among others) from the environment, not --lang.
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("LANGUAGE", "fr")
            .env("LANG", "fr_FR.UTF-8")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))?;
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut r) = driver.http.get(format!("{}/status", driver.base)).call() {
                let v: Value = r.body_mut().read_json().unwrap_or_default();
                if v["value"]["ready"] == true {
                    return Ok(driver);
                }
            }
            if Instant::now() > deadline {
                return Err("chromedriver did not become ready in 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One WebDriver command; the reply's `value`, or the error it carries.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let reply = match (method, body) {
            ("GET", _) => self.http.get(&url).call(),
            ("DELETE", _) => self.http.delete(&url).call(),
            (_, b) => self.http.post(&url).send_json(b.unwrap_or(json!({}))),
        };
        let mut reply = reply.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = reply.status().as_u16();
        let v: Value = reply
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_json()
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if status != 200 {
            return Err(format!("{method} {path}: {status} {}", v["value"]));
        }
        Ok(v["value"].clone())
    }

    /// A new headless session with its own throwaway profile.
    fn session(&self, profile: &Path) -> Result<Browser<'_>, String> {
        let args = [
            "--headless=new".to_owned(),
            "--lang=fr-FR".into(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--ignore-certificate-errors".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,1024".into(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args,
                "prefs": {"intl.accept_languages": "fr-FR,fr"}},
        }}});
        let v = self.call("POST", "/session", Some(caps))?;
        let session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no sessionId in {v}"))?
            .to_owned();
        let b = Browser {
            driver: self,
            session,
        };
        b.cmd(
            "POST",
            "/timeouts",
            json!({"script": 120_000, "pageLoad": 60_000, "implicit": 0}),
        );
        Ok(b)
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let _ = self
            .driver
            .call("DELETE", &format!("/session/{}", self.session), None);
    }
}

impl Browser<'_> {
    /// A session command that must succeed.
    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        match self.driver.call(method, &path, Some(body)) {
            Ok(v) => v,
            Err(e) => panic!("WebDriver: {e}"),
        }
    }

    fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({"url": url}));
    }

    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {css}: {v}"))
            .to_owned()
    }

    fn exists(&self, css: &str) -> bool {
        let v = self.cmd(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        );
        v.as_array().is_some_and(|a| !a.is_empty())
    }

    /// Like [`Self::exists`], polled for up to 10 s: a click that submits
    /// a form may return before the next page is loaded.
    fn appears(&self, css: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if self.exists(css) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Polls `cond` for up to 10 s (a submit click may return before the
    /// next page is loaded).
    fn until(&self, cond: impl Fn(&Self) -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if cond(self) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/clear"), json!({}));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            json!({"text": text}),
        );
    }

    fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), json!({}));
    }

    fn script(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    fn title(&self) -> String {
        self.cmd("GET", "/title", json!({}))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn text(&self) -> String {
        self.script("return document.body.innerText;", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn url(&self) -> String {
        self.cmd("GET", "/url", json!({}))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn screenshot(&self, file: &Path) {
        let b64 = self.cmd("GET", "/screenshot", json!({}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        assert!(png.starts_with(b"\x89PNG"), "screenshot is a PNG");
        std::fs::write(file, png).unwrap();
    }

    /// Runs axe-core (WCAG 2.1 A/AA) on the current page; returns its
    /// violations.
    fn axe(&self, axe_source: &str) -> Vec<Value> {
        // Evaluated through the driver, so the page's CSP does not apply.
        let loaded = self.script(
            &format!("{axe_source}\n;return typeof window.axe;"),
            json!([]),
        );
        assert_eq!(loaded, "object", "axe-core loaded in the page");
        let result = self.cmd(
            "POST",
            "/execute/async",
            json!({
                "script": "const done = arguments[arguments.length - 1];\
                    axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})\
                      .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact,\
                         help: v.help, nodes: v.nodes.map(n => n.target.join(' '))}))))\
                      .catch(e => done({error: String(e)}));",
                "args": [TAGS],
            }),
        );
        assert!(result.get("error").is_none(), "axe failed: {result}");
        result.as_array().cloned().unwrap_or_default()
    }
}

fn password_of(cli_output: &str) -> String {
    cli_output
        .lines()
        .find_map(|l| {
            l.split_once("une seule fois) : ")
                .map(|(_, p)| p.trim().to_owned())
        })
        .expect("password line")
}

fn axe_source() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/browser/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/install-deps.sh (npm ci in tests/browser)",
            path.display()
        )
    })
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_page_for_every_role_in_chromium_passes_axe() {
    let driver = match Driver::start() {
        Ok(d) => d,
        Err(why) => {
            eprintln!("SKIPPED browser test: {why} (run scripts/install-deps.sh)");
            return;
        }
    };
    let profile = tempfile::tempdir().unwrap();
    let browser = match driver.session(profile.path()) {
        Ok(b) => b,
        Err(why) => {
            eprintln!("SKIPPED browser test: chromium did not start: {why}");
            return;
        }
    };
    let axe = axe_source();
    let shots = screenshot_dir();

    // The school in scope requires approval, so enrolled machines wait in
    // the queue and the bulk action « Approuver » has work to do.
    let f = Fixture::with_school_flags(&["--require-approval"]);
    let d = f.dir().to_owned();
    cli(&[
        "school",
        "add",
        "--data-dir",
        &d,
        "--uai",
        OTHER,
        "--name",
        "Lycée Dehors",
        "--commune",
        "Paris",
        "--academie",
        "Paris",
        "--kind",
        "lycee",
    ]);
    let token_in = f.token(&["--uses", "5"]);
    let token_out = cli(&[
        "token",
        "create",
        "--data-dir",
        &d,
        "--school",
        OTHER,
        "--uses",
        "5",
    ]);
    let pw = |args: &[&str]| {
        let mut a = vec!["user", "add", "--data-dir", d.as_str()];
        a.extend_from_slice(args);
        password_of(&cli(&a))
    };
    let people = [
        ("chef", pw(&["chef", "--role", "admin"]), "admin", true),
        (
            "gest",
            pw(&["gest", "--role", "school", "--school", UAI]),
            "gestionnaire",
            true,
        ),
        (
            "aud",
            pw(&["aud", "--role", "auditor", "--scope", "academie:Lille"]),
            "auditeur",
            false,
        ),
    ];
    cli(&["assign", "--data-dir", &d, "--school", UAI, "nird-base"]);

    let server = Server::start(&f.data);
    let client = f.client();
    let m_admin = enroll(&client, &server, token_in.trim(), "pc-dedans-01");
    let m_gest = enroll(&client, &server, token_in.trim(), "pc-dedans-02");
    enroll(&client, &server, token_out.trim(), "pc-dehors-99");
    let base = server.url("");
    let web: ureq::Agent = {
        let pem = std::fs::read(f.data.ca_cert()).unwrap();
        let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
            .build();
        ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .build()
            .into()
    };

    let started = Instant::now();
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    let mut check = |page: &str, role: &str| {
        let file = shots.join(format!("{role}-{page}.png"));
        browser.screenshot(&file);
        let violations = browser.axe(&axe);
        let mut by_impact = std::collections::BTreeMap::<String, usize>::new();
        for v in &violations {
            *by_impact
                .entry(v["impact"].as_str().unwrap_or("none").to_owned())
                .or_default() += 1;
            if matches!(v["impact"].as_str(), Some("serious" | "critical")) {
                failures.push(format!("{role}/{page}: {v}"));
            }
        }
        summary.push(format!("{role}/{page}: {by_impact:?} {violations:?}"));
    };

    // The login page itself, before anyone logs in.
    browser.goto(&format!("{base}/connexion"));
    assert!(
        browser.exists("#identifiant"),
        "login form at {}",
        browser.url()
    );
    check("connexion", "anonyme");
    // axe really judges the page: an image without text alternative and an
    // unlabelled field, added to the DOM, are reported (then reloaded away).
    browser.script(
        "document.querySelector('main').insertAdjacentHTML('beforeend',\
           '<img src=\"/style.css\"><input type=\"text\">');",
        json!([]),
    );
    let found: Vec<_> = browser.axe(&axe).iter().map(|v| v["id"].clone()).collect();
    assert!(
        found.contains(&json!("image-alt")) && found.contains(&json!("label")),
        "axe self-check: {found:?}"
    );

    for (login, password, role, manage) in &people {
        browser.goto(&format!("{base}/connexion"));
        browser.type_into("#identifiant", login);
        browser.type_into("#mot-de-passe", password);
        browser.click("#se-connecter");
        assert!(
            browser.appears("#deconnexion"),
            "{login} logged in: {}",
            browser.text()
        );

        // Accueil.
        browser.goto(&format!("{base}/"));
        assert!(
            browser.title().starts_with("Accueil"),
            "{}",
            browser.title()
        );
        let home = browser.text();
        assert!(home.contains("École Jean Jaurès"), "{home}");
        assert_eq!(
            home.contains("Lycée Dehors"),
            *role == "admin",
            "{role}: {home}"
        );
        check("accueil", role);

        // Établissement: filter on free text, then the bulk action.
        browser.goto(&format!("{base}/etablissements/{UAI}"));
        let mine = if *role == "admin" { &m_admin } else { &m_gest };
        browser.type_into("#f-q", "dedans-0");
        browser.click("#filtrer");
        assert!(
            browser.until(|b| b.url().contains("q=dedans-0")),
            "{}",
            browser.url()
        );
        let machines = |b: &Browser| {
            b.script(
                "return document.querySelector('#actions-groupees table').innerText;",
                json!([]),
            )
            .as_str()
            .unwrap_or_default()
            .to_owned()
        };
        assert!(
            browser.until(|b| {
                let t = machines(b);
                t.contains("pc-dedans-01") && t.contains("pc-dedans-02")
            }),
            "{}",
            machines(&browser)
        );
        browser.type_into("#f-q", "absent");
        browser.click("#filtrer");
        assert!(browser.until(|b| b.url().contains("q=absent")));
        assert!(
            browser.until(|b| b.exists("#f-q") && !machines(b).contains("pc-dedans-01")),
            "filter drops rows: {}",
            machines(&browser)
        );
        browser.goto(&format!("{base}/etablissements/{UAI}?q=dedans"));
        check("etablissement", role);
        assert_eq!(browser.exists("#appliquer-action"), *manage, "{role}");
        if *manage {
            let host = if *role == "admin" {
                "pc-dedans-01"
            } else {
                "pc-dedans-02"
            };
            let queue = |b: &Browser| {
                b.script(
                    "const h = document.getElementById('approbation');\
                     let t = ''; for (let n = h.nextElementSibling; n && n.tagName !== 'H2';\
                     n = n.nextElementSibling) t += n.innerText; return t;",
                    json!([]),
                )
                .as_str()
                .unwrap_or_default()
                .to_owned()
            };
            assert!(queue(&browser).contains(host), "{host} waits for approval");
            browser.click(&format!("#sel-{}", mine.id));
            browser.script(
                "document.getElementById('action').value = 'approve';",
                json!([]),
            );
            browser.click("#appliquer-action");
            // Let the POST finish before leaving the page.
            browser.until(|b| !queue(b).contains(host));
            browser.goto(&format!("{base}/etablissements/{UAI}"));
            assert!(
                !queue(&browser).contains(host),
                "{role} approved {host}: {}",
                queue(&browser)
            );
        }

        // The CSV export: the page's link, fetched with the browser's own
        // session cookie (the page's CSP forbids fetch() from the page, and
        // headless chromium would only save the download).
        let href = browser
            .script(
                "return document.getElementById('export-csv').href;",
                json!([]),
            )
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let cookie = browser.cmd("GET", "/cookie/__Host-nird_session", json!({}));
        let cookie = cookie["value"].as_str().expect("session cookie").to_owned();
        let csv = web
            .get(&href)
            .header("cookie", format!("__Host-nird_session={cookie}"))
            .call()
            .expect("export");
        assert_eq!(csv.status(), 200, "{href}");
        let kind = csv
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        assert!(kind.is_some_and(|t| t.starts_with("text/csv")), "{kind:?}");
        let body = csv.into_body().read_to_string().unwrap_or_default();
        assert!(body.contains("pc-dedans-01"), "{body}");
        assert!(!body.contains("pc-dehors-99"), "export is scoped: {body}");

        // Machine.
        browser.goto(&format!("{base}/machines/{}", mine.id));
        assert!(browser.text().contains("Identité"));
        check("machine", role);

        // Profils, Journal, Mon compte.
        for (path, page, heading) in [
            ("/profils", "profils", "Profils"),
            ("/journal", "journal", "Journal"),
            ("/compte", "compte", "Mon compte"),
        ] {
            browser.goto(&format!("{base}{path}"));
            assert!(
                browser.title().starts_with(heading),
                "{path}: {}",
                browser.title()
            );
            check(page, role);
        }
        // A journal filter.
        browser.goto(&format!("{base}/journal"));
        browser.type_into("#j-action", "machine");
        browser.click("#filtrer-journal");
        // The click's navigation may still be under way: wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !browser.url().contains("action=machine") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            browser.url().contains("action=machine"),
            "{}",
            browser.url()
        );

        // Utilisateurs: the admin's page; for the others, not found.
        browser.goto(&format!("{base}/utilisateurs"));
        if *role == "admin" {
            assert!(
                browser.title().starts_with("Utilisateurs"),
                "{}",
                browser.title()
            );
            let users = browser.text();
            assert!(users.contains("gest") && users.contains("aud"));
        } else {
            assert!(
                browser.title().contains("introuvable"),
                "{}",
                browser.title()
            );
        }
        check("utilisateurs", role);
        if *role == "admin" {
            // A refused form comes back with what was typed and the error
            // above it, announced; axe judges that page too.
            browser.type_into("#n-login", "perdu");
            browser.type_into("#n-scope", "uai:0620057A");
            browser.click("#creer-compte");
            assert!(browser.appears("#erreur-formulaire"));
            let kept = browser.script(
                "return [document.getElementById('n-login').value, \
                 document.getElementById('n-scope').value, \
                 document.getElementById('n-scope').getAttribute('aria-invalid')];",
                json!([]),
            );
            assert_eq!(kept, json!(["perdu", "uai:0620057A", "true"]));
            check("utilisateurs-refus", role);
        }

        browser.goto(&format!("{base}/compte"));
        browser.click("#deconnexion");
        // Let the logout's POST land (it redirects to the login form)
        // before leaving: a navigation started at once could cancel it.
        assert!(
            browser.until(|b| b.url().ends_with("/connexion")),
            "{login}: {}",
            browser.url()
        );
        browser.goto(&format!("{base}/"));
        assert!(browser.exists("#identifiant"), "{login} logged out");
    }

    eprintln!(
        "browser walk: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    for line in &summary {
        eprintln!("axe {line}");
    }
    assert!(
        failures.is_empty(),
        "serious or critical WCAG 2.1 A/AA violations:\n{}",
        failures.join("\n")
    );
    // The collectivités' audit, in the same browser (issue 10).
    audit_pages(&browser, &axe, &shots);
    drop(browser);
    server.stop().unwrap();
}

/// Text of a PDF, by `pdftotext` (poppler-utils, installed by
/// scripts/install-deps.sh).
fn pdf_text(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed by scripts/install-deps.sh");
    assert!(
        out.status.success(),
        "pdftotext failed on {}",
        pdf.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asks chromium to print the current page to PDF (WebDriver `print`, A4);
/// saves it as `file` and returns its text.
fn print_to_pdf(browser: &Browser, file: &Path) -> String {
    let b64 = browser.cmd(
        "POST",
        "/print",
        json!({"background": true, "page": {"width": 21.0, "height": 29.7}}),
    );
    let pdf = base64::engine::general_purpose::STANDARD
        .decode(b64.as_str().unwrap_or_default())
        .expect("print answers base64");
    assert!(pdf.starts_with(b"%PDF"), "a PDF");
    std::fs::write(file, &pdf).unwrap();
    pdf_text(file)
}

/// The audit page, the printable report and a passport (and a whole
/// school's passports), as an auditor of the département: screenshots,
/// axe-core, and the report and the passport printed to PDF by chromium,
/// whose text holds the figures, the method and the sources.
fn audit_pages(browser: &Browser, axe: &str, shots: &Path) {
    let f = Fixture::new();
    let d = f.dir().to_owned();
    let aud_pw = password_of(&cli(&[
        "user",
        "add",
        "--data-dir",
        &d,
        "aud",
        "--role",
        "auditor",
        "--scope",
        "departement:062",
    ]));
    let token = f.token(&["--uses", "5"]);
    let server = Server::start(&f.data);
    let client = f.client();
    // Two machines with real inventories (the ThinkPad T430 fixture).
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../agent/tests/fixtures/laptop-t430.json"
    ))
    .unwrap();
    let mut ids = Vec::new();
    for host in ["salle12-pc07", "salle12-pc08"] {
        let mut inv: Value = serde_json::from_str(&fixture).unwrap();
        inv["identity"]["hostname"]["value"] = host.into();
        inv["identity"]["serial"]["value"] = format!("SN-{host}").into();
        let hash = nird_proto::hash::content_hash(&inv).unwrap();
        let req = nird_proto::api::EnrollRequest {
            token: token.trim().into(),
            hostname: host.into(),
            inventory: inv,
            inventory_hash: hash,
        };
        let r = client.post(
            &server.api("/enroll"),
            None,
            &serde_json::to_vec(&req).unwrap(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.json()["machine_id"].as_str().unwrap().to_owned());
    }
    let base = server.url("");
    let mut failures = Vec::new();
    let mut check = |page: &str| {
        browser.screenshot(&shots.join(format!("auditeur-{page}.png")));
        for v in browser.axe(axe) {
            if matches!(v["impact"].as_str(), Some("serious" | "critical")) {
                failures.push(format!("auditeur/{page}: {v}"));
            }
        }
    };

    browser.goto(&format!("{base}/connexion"));
    browser.type_into("#identifiant", "aud");
    browser.type_into("#mot-de-passe", &aud_pw);
    browser.click("#se-connecter");
    assert!(browser.appears("#deconnexion"), "{}", browser.text());

    // The audit page, with the territory selector used.
    browser.goto(&format!("{base}/audit"));
    assert!(
        browser.title().starts_with("Audit du réemploi"),
        "{}",
        browser.title()
    );
    browser.script(
        "document.getElementById('noeud').value = 'departement:062';",
        json!([]),
    );
    browser.click("#afficher");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !browser.url().contains("noeud=departement%3A062") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        browser.url().contains("noeud=departement%3A062"),
        "{}",
        browser.url()
    );
    let text = browser.text();
    assert!(
        text.contains("Machines reconditionnées en service"),
        "{text}"
    );
    assert!(
        text.contains("pas de TPM 2.0") && text.contains("ADEME"),
        "{text}"
    );
    check("audit");

    // The printable report, printed to PDF.
    browser.goto(&format!("{base}/audit/rapport?noeud=departement:062"));
    assert!(
        browser.title().starts_with("Rapport d'audit"),
        "{}",
        browser.title()
    );
    check("rapport");
    let report = print_to_pdf(browser, &shots.join("auditeur-rapport.pdf"));
    for needle in [
        "Machines reconditionnées en service",
        "pas de TPM 2.0",
        "kgCO2e",
        "Méthode",
        "Fabrication évitée",
        "Sources",
        "ADEME",
        "NégaOctet",
        "département 062",
    ] {
        assert!(
            report.contains(needle),
            "report PDF lacks « {needle} »:\n{report}"
        );
    }
    // The two machines are counted: 2 laptops × 182,6 = 365,2 kgCO2e.
    assert!(report.contains("365,2"), "report PDF figures:\n{report}");

    // A passport, printed to PDF.
    browser.goto(&format!("{base}/machines/{}/fiche", ids[0]));
    assert!(
        browser.title().starts_with("Fiche de reconditionnement"),
        "{}",
        browser.title()
    );
    check("fiche");
    let fiche = print_to_pdf(browser, &shots.join("auditeur-fiche.pdf"));
    for needle in [
        "Fiche de reconditionnement",
        "ThinkPad T430",
        "SN-salle12-pc07",
        "incompatible",
        "pas de TPM 2.0",
        "Ivy Bridge",
        "Pris en réemploi le",
        "École Jean Jaurès",
    ] {
        assert!(
            fiche.contains(needle),
            "passport PDF lacks « {needle} »:\n{fiche}"
        );
    }
    // The whole school's passports: one per machine.
    browser.goto(&format!("{base}/etablissements/{UAI}/fiches"));
    let n = browser.script(
        "return document.querySelectorAll('article.fiche').length;",
        json!([]),
    );
    assert_eq!(n, 2);
    check("fiches-etablissement");
    // The data dictionary.
    browser.goto(&format!("{base}/audit/dictionnaire"));
    check("dictionnaire");

    // A real inventory on the machine page: screens, peripherals, the
    // Windows licence evidence, and the software it links to.
    browser.goto(&format!("{base}/machines/{}", ids[0]));
    let page = browser.text();
    for needle in [
        "LTN156AT16L01",
        "écran intégré",
        "Contrôleurs PCI (",
        "Clavier et pointage : indisponible",
        "4 paquets Debian installés",
    ] {
        assert!(page.contains(needle), "machine page lacks « {needle} »");
    }
    check("machine-materiel");
    browser.click("a[href$='/logiciels']");
    assert!(browser.until(|b| b.title().starts_with("Logiciels de salle12-pc07")));
    // The filter, from the keyboard: type, then Enter submits.
    browser.type_into("#q", "LIBRE\u{E007}");
    assert!(
        browser.until(|b| b.url().contains("q=LIBRE")),
        "{}",
        browser.url()
    );
    let list = browser.text();
    assert!(
        list.contains("libreoffice-writer") && !list.contains("xfce4-session"),
        "{list}"
    );
    check("logiciels-machine");
    // Which machines of the school have Firefox.
    browser.goto(&format!("{base}/etablissements/{UAI}/logiciels?q=firefox"));
    let found = browser.text();
    assert!(
        found.contains("firefox : 2 installation(s)")
            && found.contains("salle12-pc07")
            && found.contains("salle12-pc08"),
        "{found}"
    );
    check("logiciels-etablissement");

    // Reflow at 320 px (WCAG 1.4.10): the label / value lists and the
    // headings fit the width; only data tables may scroll.
    browser.cmd("POST", "/window/rect", json!({"width": 320, "height": 900}));
    for (path, page) in [
        (format!("/machines/{}", ids[0]), "machine-320"),
        ("/audit?noeud=departement:062".to_owned(), "audit-320"),
        (format!("/etablissements/{UAI}"), "etablissement-320"),
    ] {
        browser.goto(&format!("{base}{path}"));
        browser.screenshot(&shots.join(format!("auditeur-{page}.png")));
        let overflowing = browser.script(
            "const w = document.documentElement.clientWidth;\
             return [...document.querySelectorAll('dl.facts dd, dl.facts dt, h1, h2, p, legend, label')]\
               .filter(e => !e.closest('table') && e.getBoundingClientRect().right > w + 1)\
               .map(e => e.tagName + ': ' + e.textContent.trim().slice(0, 60));",
            json!([]),
        );
        assert_eq!(overflowing, json!([]), "{path} at 320 px");
    }
    browser.cmd(
        "POST",
        "/window/rect",
        json!({"width": 1280, "height": 900}),
    );
    assert!(
        failures.is_empty(),
        "serious or critical WCAG 2.1 A/AA violations on the audit pages:\n{}",
        failures.join("\n")
    );
    server.stop().unwrap();
}
