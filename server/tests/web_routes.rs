//! The dashboard over real HTTPS: every route (pages, exports, JSON API,
//! every POST) walked for each role with an object in scope and one out of
//! scope. Checks the status, that out-of-scope names never appear in any
//! answer, that a POST without its CSRF token is refused and changes
//! nothing (the audit log, written with every change, does not grow), that
//! logged-out, expired and idle sessions are refused, and that the login
//! rate limit holds.

mod common;

use common::{Fixture, Server, UAI, checkin, cli, report};
use nird_proto::api::CheckinRequest;
use serde_json::json;

/// The school out of the non-admin users' scope (académie de Paris).
const OTHER: &str = "0750001U";

/// Words that only the out-of-scope school and its machine carry.
const OUTSIDE: [&str; 4] = ["Lycée Dehors", "pc-dehors-99", "SERIE-DEHORS", OTHER];

struct Resp {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    content_type: String,
    body: String,
}

struct Web {
    agent: ureq::Agent,
    base: String,
}

impl Web {
    fn new(f: &Fixture, server: &Server) -> Self {
        let pem = std::fs::read(f.data.ca_cert()).unwrap();
        let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .into();
        Web {
            agent,
            base: server.url(""),
        }
    }

    fn finish(resp: ureq::http::Response<ureq::Body>) -> Resp {
        let mut resp = resp;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location");
        let content_type = header("content-type").unwrap_or_default();
        let cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Resp {
            status: resp.status().as_u16(),
            location,
            cookies,
            content_type,
            body,
        }
    }

    fn get(&self, path: &str, cookie: Option<&str>, bearer: Option<&str>) -> Resp {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(c) = cookie {
            req = req.header("cookie", format!("__Host-nird_session={c}"));
        }
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        Self::finish(req.call().expect("GET failed"))
    }

    fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Resp {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            s.append_pair(k, v);
        }
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header("cookie", format!("__Host-nird_session={c}"));
        }
        Self::finish(req.send(s.finish()).expect("POST failed"))
    }

    /// Logs in; returns (cookie value, CSRF token).
    fn login(&self, login: &str, password: &str) -> (String, String) {
        let r = self.post(
            "/connexion",
            None,
            &[("login", login), ("password", password)],
        );
        assert_eq!(r.status, 303, "login {login}: {}", r.body);
        let set = r
            .cookies
            .iter()
            .find(|c| c.starts_with("__Host-nird_session="))
            .expect("session cookie");
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        let cookie = set["__Host-nird_session=".len()..]
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let home = self.get("/compte", Some(&cookie), None);
        assert_eq!(home.status, 200);
        (cookie, csrf_of(&home.body))
    }
}

/// The HTML of the form with this id, up to its end.
fn form_html<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no form {id}"));
    let end = html[start..]
        .find("</form>")
        .map_or(html.len(), |e| start + e);
    &html[start..end]
}

fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).expect("a form with a CSRF field") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
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

fn audit_len(f: &Fixture) -> i64 {
    let conn = rusqlite::Connection::open(f.data.database()).unwrap();
    conn.query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))
        .unwrap()
}

fn sql(f: &Fixture, statement: &str) {
    let conn = rusqlite::Connection::open(f.data.database()).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.execute_batch(statement).unwrap();
}

/// An inventory in the real document's shape, as far as the dashboard
/// reads it.
fn inventory(host: &str, serial: &str, smart: &str) -> (serde_json::Value, String) {
    let inv = json!({
        "schema_version": 1,
        "agent_version": "0.1.0",
        "identity": {"hostname": {"value": host}, "serial": {"value": serial},
                     "vendor": {"value": "Dell"}, "product": {"value": "OptiPlex 7010"}},
        "storage": {"disks": {"value": [{"name": "sda", "size_bytes": 250000000000u64,
            "smart": {"value": {"health": smart}}}]},
            "filesystems": {"value": []}},
        "batteries": {"value": []},
        "windows11": {"status": "ineligible", "blockers": ["tpm2"], "unknown": []},
        "firmware": {"windows_oem_licence": {"value": true}},
        // Each machine its own GCompris, so a school's search shows only its own.
        "software": {"value": {"packages": [
            {"name": "gcompris-qt", "version": format!("3.1-1+{serial}"), "arch": "amd64",
             "section": "games", "size_kib": 51_200},
            {"name": "tuxpaint", "version": "1:0.9.28-1", "arch": "amd64"},
            {"name": "g++", "version": "4:12.2.0-3", "arch": "amd64"},
        ], "flatpaks": [{"id": "org.kde.GCompris", "branch": "stable", "arch": "x86_64"}]}},
        "monitors": {"value": [{"connector": "HDMI-A-1", "builtin": false,
            "manufacturer_id": "DEL", "product_code": 41_200, "model": format!("ECRAN-{serial}"),
            "year": 2014, "digital": true}]},
        "peripherals": {"usb": {"value": [{"vendor_id": "046d", "product_id": "c52b",
            "class": "03", "product_name": "Unifying Receiver"}]},
            "printers": {"value": []}},
    });
    let hash = nird_proto::hash::content_hash(&inv).unwrap();
    (inv, hash)
}

fn enroll(
    web_client: &common::Client,
    server: &Server,
    token: &str,
    host: &str,
    serial: &str,
    smart: &str,
) -> (String, String) {
    let (inv, hash) = inventory(host, serial, smart);
    let req = json!({"token": token, "hostname": host, "inventory": inv, "inventory_hash": hash});
    let r = web_client.post(&server.api("/enroll"), None, req.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let id = body["machine_id"].as_str().unwrap().to_owned();
    let auth = nird_proto::api::machine_authorization(&id, body["secret"].as_str().unwrap());
    let c = checkin(
        web_client,
        server,
        &auth,
        &CheckinRequest {
            inventory_hash: hash,
            inventory: None,
            inventory_delta: None,
            applied: vec![],
            reports: vec![report(1)],
            trust: None,
        },
    );
    assert_eq!(c.status, 200, "{}", c.text());
    (id, auth)
}

struct Person {
    login: &'static str,
    cookie: String,
    csrf: String,
    api_token: String,
    admin: bool,
    manage: bool,
}

#[test]
fn every_route_for_every_role_in_and_out_of_scope() {
    let f = Fixture::new();
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
    let token_in = f.token(&["--uses", "5"]); // id 1
    let token_out = cli(&[
        "token",
        "create",
        "--data-dir",
        &d,
        "--school",
        OTHER,
        "--uses",
        "5",
    ]); // id 2
    let pw = |args: &[&str]| {
        let mut a = vec!["user", "add", "--data-dir", d.as_str()];
        a.extend_from_slice(args);
        password_of(&cli(&a))
    };
    let admin_pw = pw(&["chef", "--role", "admin"]);
    let gest_pw = pw(&["gest", "--role", "school", "--school", UAI]);
    let aud_pw = pw(&["aud", "--role", "auditor", "--scope", "academie:Lille"]);
    pw(&[
        "jetable",
        "--role",
        "school",
        "--scope",
        "commune:062/Calais",
    ]);
    let api_token = |login: &str| {
        cli(&["user", "token", "create", "--data-dir", &d, login])
            .trim()
            .to_owned()
    };
    let tokens = [api_token("chef"), api_token("gest"), api_token("aud")];
    cli(&["assign", "--data-dir", &d, "--school", UAI, "nird-base"]);
    cli(&[
        "assign",
        "--data-dir",
        &d,
        "--school",
        OTHER,
        "dehors-profil",
    ]);

    let server = Server::start(&f.data);
    let client = f.client();
    let (m_in, _) = enroll(
        &client,
        &server,
        token_in.trim(),
        "pc-dedans-01",
        "SERIE-DEDANS",
        "failing",
    );
    let (m_out, _) = enroll(
        &client,
        &server,
        token_out.trim(),
        "pc-dehors-99",
        "SERIE-DEHORS",
        "passed",
    );
    let web = Web::new(&f, &server);

    // Anonymous: every page redirects to the login form, the API is 401.
    for path in [
        "/",
        &format!("/etablissements/{UAI}"),
        &format!("/machines/{m_in}"),
        "/profils",
        "/journal",
        "/utilisateurs",
        "/compte",
        "/machines.csv",
        "/deconnexion",
    ] {
        let r = web.get(path, None, None);
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.location.as_deref(), Some("/connexion"));
    }
    assert_eq!(web.get("/api/v1/admin/machines", None, None).status, 401);
    assert_eq!(
        web.get("/api/v1/admin/machines", None, Some("nird_pat_faux"))
            .status,
        401
    );
    let login_page = web.get("/connexion", None, None);
    assert_eq!(login_page.status, 200);
    assert!(
        login_page.body.contains("id=\"identifiant\"")
            && login_page.body.contains("for=\"mot-de-passe\"")
    );
    // A mistyped address: the French page for people, JSON for the APIs.
    let typo = web.get(&format!("/etablisements/{UAI}"), None, None);
    assert_eq!(typo.status, 404);
    assert!(
        typo.content_type.starts_with("text/html"),
        "{}",
        typo.content_type
    );
    assert!(typo.body.contains("Page introuvable"), "{}", typo.body);
    let api = web.get("/api/v1/inconnu", None, None);
    assert_eq!(api.status, 404);
    assert!(api.content_type.starts_with("application/json"));
    let css = web.get("/style.css", None, None);
    assert!(css.status == 200 && css.content_type.starts_with("text/css"));

    let mut people = Vec::new();
    for (i, (login, password, admin, manage)) in [
        ("chef", &admin_pw, true, true),
        ("gest", &gest_pw, false, true),
        ("aud", &aud_pw, false, false),
    ]
    .into_iter()
    .enumerate()
    {
        let (cookie, csrf) = web.login(login, password);
        people.push(Person {
            login,
            cookie,
            csrf,
            api_token: tokens[i].clone(),
            admin,
            manage,
        });
    }

    // The precomputed columns came from the inventory and the report.
    let admin = &people[0];
    let page = web.get(&format!("/machines/{m_in}"), Some(&admin.cookie), None);
    assert!(page.body.contains("SERIE-DEDANS") && page.body.contains("Dell OptiPlex 7010"));
    assert!(page.body.contains("SMART en échec"), "alert precomputed");
    assert!(page.body.contains("appliqué"), "report precomputed");

    for p in &people {
        let c = Some(p.cookie.as_str());
        let see_outside = |r: &Resp, what: &str| {
            for word in OUTSIDE {
                assert!(
                    !r.body.contains(word),
                    "{} saw « {word} » on {what}",
                    p.login
                );
            }
        };
        // Pages and exports, in scope: 200 and the school's names.
        for path in [
            "/".to_owned(),
            format!("/etablissements/{UAI}"),
            format!(
                "/etablissements/{UAI}?etat=active&win11=ineligible&profil=applied&alerte=smart&q=dedans&tri=vu&ordre=desc&col=nom&col=serie"
            ),
            format!("/machines/{m_in}"),
            format!("/machines/{m_in}/logiciels"),
            format!("/machines/{m_in}/logiciels?q=GCOMPRIS"),
            format!("/etablissements/{UAI}/logiciels"),
            format!("/etablissements/{UAI}/logiciels?q=gcompris"),
            "/profils".into(),
            "/journal".into(),
            format!("/journal?etablissement={UAI}&action=machine"),
            "/compte".into(),
            "/machines.csv".into(),
            "/machines.json".into(),
            format!("/machines.csv?etablissement={UAI}&col=nom"),
        ] {
            let r = web.get(&path, c, None);
            assert_eq!(r.status, 200, "{} GET {path}: {}", p.login, r.body);
            if !p.admin {
                see_outside(&r, &path);
            }
        }
        let home = web.get("/", c, None);
        assert!(home.body.contains("École Jean Jaurès"));
        assert_eq!(home.body.contains("Lycée Dehors"), p.admin);
        let filtered = web.get(
            &format!("/etablissements/{UAI}?alerte=smart&q=DEDANS"),
            c,
            None,
        );
        assert!(
            filtered.body.contains("pc-dedans-01"),
            "filter keeps the machine"
        );
        let none = web.get(&format!("/etablissements/{UAI}?q=absent"), c, None);
        assert!(
            !none.body.contains("pc-dedans-01"),
            "filter drops the machine"
        );
        // An empty result says so, and offers no bulk action.
        assert!(
            none.body
                .contains("Aucune machine ne correspond à ces filtres.")
        );
        assert!(!none.body.contains("id=\"appliquer-action\""));
        // Installed software, screens and peripherals on the machine page;
        // which machines of the school have a package.
        let page = web.get(&format!("/machines/{m_in}"), c, None);
        for shown in [
            "ECRAN-SERIE-DEDANS",
            "Unifying Receiver",
            "Imprimantes : aucune connue de CUPS",
            "3 paquets Debian et 1 applications Flatpak",
            "licence Windows OEM",
        ] {
            assert!(
                page.body.contains(shown),
                "{} machine page: {shown}",
                p.login
            );
        }
        let list = web.get(&format!("/machines/{m_in}/logiciels?q=TUX"), c, None);
        assert!(list.body.contains("1:0.9.28-1") && !list.body.contains(">gcompris-qt<"));
        let found = web.get(
            &format!("/etablissements/{UAI}/logiciels?q=GCompris"),
            c,
            None,
        );
        for shown in [
            "gcompris-qt",
            "3.1-1+SERIE-DEDANS",
            "org.kde.GCompris",
            "pc-dedans-01",
        ] {
            assert!(found.body.contains(shown), "{} search: {shown}", p.login);
        }
        // One school's search: even the admin does not see the other's.
        assert!(!found.body.contains("pc-dehors-99") && !found.body.contains("SERIE-DEHORS"));
        // A « + » in a name survives the machine links (it reads as a space
        // unencoded).
        let plus = web.get(
            &format!("/etablissements/{UAI}/logiciels?q=g%2B%2B"),
            c,
            None,
        );
        assert!(
            plus.body.contains("/logiciels?q=g%2B%2B\""),
            "{}",
            plus.body
        );
        let none = web.get(&format!("/etablissements/{UAI}/logiciels?q=gimp"), c, None);
        assert!(none.body.contains("Aucune des 1 machines"), "{}", none.body);
        for bad in ["q=%3Cscript%3E", "q=gcompris%27--"] {
            let r = web.get(&format!("/etablissements/{UAI}/logiciels?{bad}"), c, None);
            assert_eq!(r.status, 400, "{bad}");
            assert!(r.body.contains("Nom de logiciel"), "{}", r.body);
        }

        let csv = web.get("/machines.csv?col=nom&col=serie", c, None);
        assert!(csv.content_type.starts_with("text/csv"));
        assert!(
            csv.body.starts_with("\u{feff}Nom d'hôte;N° de série\r\n"),
            "{}",
            csv.body
        );
        assert!(csv.body.contains("pc-dedans-01;SERIE-DEDANS"));
        assert_eq!(csv.body.contains("pc-dehors-99"), p.admin);
        let json = web.get("/machines.json", c, None);
        let v: serde_json::Value = serde_json::from_str(&json.body).unwrap();
        assert_eq!(v["total"], if p.admin { 2 } else { 1 });

        // Out of scope: 404 for non-admins (admins see it).
        for path in [
            format!("/etablissements/{OTHER}"),
            format!("/machines/{m_out}"),
            format!("/machines/{m_out}/logiciels"),
            format!("/etablissements/{OTHER}/logiciels?q=gcompris"),
            format!("/journal?etablissement={OTHER}"),
        ] {
            let r = web.get(&path, c, None);
            if p.admin {
                assert_eq!(r.status, 200, "{path}");
            } else if path.starts_with("/journal") {
                // The filter form echoes the UAI typed; nothing else of it.
                assert_eq!(r.status, 200);
                for word in &OUTSIDE[..3] {
                    assert!(
                        !r.body.contains(word),
                        "{} saw « {word} » on {path}",
                        p.login
                    );
                }
                assert!(!r.body.contains(&m_out));
            } else {
                assert_eq!(r.status, 404, "{} GET {path}", p.login);
                see_outside(&r, &path);
            }
        }
        let users = web.get("/utilisateurs", c, None);
        assert_eq!(users.status, if p.admin { 200 } else { 404 });

        // JSON API with the personal token.
        let b = Some(p.api_token.as_str());
        let list = web.get("/api/v1/admin/machines", None, b);
        assert_eq!(list.status, 200);
        let v: serde_json::Value = serde_json::from_str(&list.body).unwrap();
        assert_eq!(v["total"], if p.admin { 2 } else { 1 });
        assert_eq!(web.get("/api/v1/admin/machines.csv", None, b).status, 200);
        assert_eq!(
            web.get(&format!("/api/v1/admin/machines/{m_in}"), None, b)
                .status,
            200
        );
        let out = web.get(&format!("/api/v1/admin/machines/{m_out}"), None, b);
        assert_eq!(out.status, if p.admin { 200 } else { 404 });
        if !p.admin {
            see_outside(&out, "API machine");
            see_outside(&list, "API list");
            see_outside(&web.get("/api/v1/admin/machines.csv", None, b), "API CSV");
        }
        assert_eq!(
            web.get("/api/v1/admin/machines?etat=perdu", None, b).status,
            400
        );
    }

    // Every POST: without CSRF refused (403) and nothing changes; with it,
    // the role decides; out of scope is 404 and nothing changes.
    let posts_in: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            format!("/etablissements/{UAI}/actions"),
            vec![
                ("action", "include".into()),
                ("profile", "extra".into()),
                ("machine", m_in.clone()),
            ],
        ),
        (
            format!("/etablissements/{UAI}/jetons"),
            vec![("uses", "2".into()), ("days", "3".into())],
        ),
        (
            format!("/etablissements/{UAI}/profils"),
            vec![("profiles", "nird-base extra".into())],
        ),
        (
            format!("/machines/{m_in}/actions"),
            vec![("action", "exclude".into()), ("profile", "extra".into())],
        ),
        (format!("/etablissements/{UAI}/jetons/1/revoquer"), vec![]),
    ];
    let posts_out: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            format!("/etablissements/{OTHER}/actions"),
            vec![("action", "retire".into()), ("machine", m_out.clone())],
        ),
        (
            format!("/etablissements/{UAI}/actions"),
            vec![("action", "retire".into()), ("machine", m_out.clone())],
        ),
        (
            format!("/etablissements/{OTHER}/jetons"),
            vec![("uses", "2".into()), ("days", "3".into())],
        ),
        (
            format!("/etablissements/{OTHER}/profils"),
            vec![("profiles", "x".into())],
        ),
        (
            format!("/machines/{m_out}/actions"),
            vec![("action", "retire".into())],
        ),
        (format!("/etablissements/{OTHER}/jetons/2/revoquer"), vec![]),
        (format!("/etablissements/{UAI}/jetons/2/revoquer"), vec![]),
    ];
    let admin_posts: Vec<(String, Vec<(&str, String)>)> = vec![
        (
            "/utilisateurs".into(),
            vec![
                ("login", "nouveau".into()),
                ("role", "auditor".into()),
                ("scope", "departement:062".into()),
            ],
        ),
        (
            "/utilisateurs/jetable/role".into(),
            vec![
                ("role", "auditor".into()),
                ("scope", "academie:Lille".into()),
            ],
        ),
        ("/utilisateurs/jetable/mot-de-passe".into(), vec![]),
        (
            "/utilisateurs/jetable/etat".into(),
            vec![("etat", "desactive".into())],
        ),
    ];
    // Auditors first (refused), then managers, then the admin.
    for p in people.iter().rev() {
        let c = Some(p.cookie.as_str());
        let own: Vec<(String, Vec<(&str, String)>)> = vec![
            ("/compte/jetons".to_owned(), vec![("label", "essai".into())]),
            (
                "/compte/mot-de-passe".to_owned(),
                vec![("current", "x".into())],
            ),
            ("/compte/jetons/1/revoquer".to_owned(), vec![]),
            ("/deconnexion".to_owned(), vec![]),
        ];
        let all = posts_in
            .iter()
            .chain(&posts_out)
            .chain(&admin_posts)
            .chain(&own);
        for (path, form) in all {
            let before = audit_len(&f);
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = web.post(path, c, &form);
            assert_eq!(r.status, 403, "{} POST {path} without CSRF", p.login);
            let mut forged = form.clone();
            forged.push(("csrf", "faux"));
            assert_eq!(web.post(path, c, &forged).status, 403);
            assert_eq!(
                audit_len(&f),
                before,
                "{} POST {path} without CSRF changed something",
                p.login
            );
        }
        let send = |path: &str, form: &[(&str, String)]| {
            let mut v: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            v.push(("csrf", p.csrf.as_str()));
            web.post(path, c, &v)
        };
        for (path, form) in &posts_out {
            let before = audit_len(&f);
            let r = send(path, form);
            if p.admin {
                assert!(![403, 500].contains(&r.status), "{path}: {}", r.status);
            } else {
                assert_eq!(r.status, 404, "{} POST {path} out of scope", p.login);
                for word in OUTSIDE {
                    assert!(!r.body.contains(word));
                }
                assert_eq!(
                    audit_len(&f),
                    before,
                    "{} POST {path} out of scope changed something",
                    p.login
                );
            }
        }
        if p.admin {
            continue; // the admin retired the other machine above: fine.
        }
        for (path, form) in &posts_in {
            let before = audit_len(&f);
            let r = send(path, form);
            if p.manage {
                assert!(
                    r.status == 303 || r.status == 200,
                    "{} POST {path}: {} {}",
                    p.login,
                    r.status,
                    r.body
                );
                assert!(audit_len(&f) > before, "{} POST {path} recorded", p.login);
                if path.ends_with("/jetons") {
                    assert!(
                        r.body
                            .contains("nird-agent enroll --server https://127.0.0.1:")
                    );
                    assert!(r.body.contains("--ca-fingerprint"));
                }
            } else {
                assert_eq!(r.status, 403, "{} POST {path}", p.login);
                assert_eq!(audit_len(&f), before);
            }
        }
        for (path, form) in &admin_posts {
            let before = audit_len(&f);
            assert_eq!(send(path, form).status, 404, "{} POST {path}", p.login);
            assert_eq!(audit_len(&f), before);
        }
        // A logout address opened in the browser offers the button; a
        // token number that is not a number is the French 404 page.
        let bye = web.get("/deconnexion", c, None);
        assert!(bye.status == 200 && bye.body.contains("confirmer-deconnexion"));
        let r = send(&format!("/etablissements/{UAI}/jetons/abc/revoquer"), &[]);
        assert_eq!(r.status, 404);
        assert!(r.body.contains("Page introuvable"), "{}", r.body);
        // Own API token: create, revoke; another person's: 404.
        let r = send("/compte/jetons", &[("label", "essai".into())]);
        assert_eq!(r.status, 200);
        assert!(r.body.contains("nird_pat_"));
        // Token n° 1 is the admin's.
        assert_eq!(send("/compte/jetons/1/revoquer", &[]).status, 404);
        let wrong = send(
            "/compte/mot-de-passe",
            &[
                ("current", "faux".into()),
                ("new", "un-mot-de-passe-long".into()),
                ("confirm", "un-mot-de-passe-long".into()),
            ],
        );
        assert_eq!(wrong.status, 400);
    }
    // Admin-only POSTs by the admin.
    let a = &people[0];
    let send_admin = |path: &str, form: &[(&str, &str)]| {
        let mut v = form.to_vec();
        v.push(("csrf", a.csrf.as_str()));
        web.post(path, Some(&a.cookie), &v)
    };
    // Assignments are judged as on the command line: more profiles than an
    // agent accepts is refused and changes nothing; an unpublished one is
    // a warning.
    let before = audit_len(&f);
    let too_many: Vec<String> = (0..=nird_proto::api::MAX_ASSIGNED)
        .map(|i| format!("p{i:03}"))
        .collect();
    let r = send_admin(
        &format!("/etablissements/{UAI}/profils"),
        &[("profiles", too_many.join(" ").as_str())],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("Affectation refusée"), "{}", r.body);
    assert_eq!(audit_len(&f), before);
    // The list comes back as typed, marked, under its reason.
    assert!(r.body.contains(&format!(
        "value=\"{}\" aria-invalid=\"true\" aria-describedby=\"erreur-formulaire\"",
        too_many.join(" ")
    )));
    let r = send_admin(
        &format!("/etablissements/{UAI}/jetons"),
        &[("uses", "40"), ("days", "400")],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Durée de validité invalide"), "{}", r.body);
    assert!(r.body.contains("value=\"40\" required>"), "{}", r.body);
    assert!(
        r.body
            .contains("value=\"400\" required aria-invalid=\"true\"")
    );
    assert_eq!(audit_len(&f), before);
    let r = send_admin(
        &format!("/etablissements/{UAI}/profils"),
        &[("profiles", "pas-publie-ici")],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("ATTENTION : « pas-publie-ici » pas publié"),
        "{}",
        r.body
    );
    let r = send_admin(
        &format!("/etablissements/{UAI}/profils"),
        &[("profiles", "nird-base extra")],
    );
    assert_eq!(r.status, 200);
    let r = send_admin(
        "/utilisateurs",
        &[
            ("login", "nouveau"),
            ("role", "auditor"),
            ("scope", "departement:062"),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("mot-de-passe-genere"));
    // An establishment not on the server: refused in French, nothing
    // written; a territory with no school yet: accepted, with a warning.
    let before = audit_len(&f);
    let r = send_admin(
        "/utilisateurs",
        &[
            ("login", "perdu"),
            ("role", "school"),
            ("scope", "uai:0620057A"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(r.body.contains("n'est pas sur ce serveur"), "{}", r.body);
    assert_eq!(audit_len(&f), before);
    // ...on the page itself, above the form, which keeps what was typed
    // and marks the field in error.
    assert!(r.body.contains("id=\"erreur-formulaire\""), "{}", r.body);
    assert!(r.body.contains("value=\"perdu\""), "{}", r.body);
    assert!(
        r.body.contains(
            "aria-invalid=\"true\" aria-describedby=\"erreur-formulaire\">uai:0620057A</textarea>"
        ),
        "{}",
        r.body
    );
    // A login already taken: the identifier is marked, the role chosen
    // kept (in the new account's own form: other accounts' forms have
    // their roles selected).
    let r = send_admin(
        "/utilisateurs",
        &[
            ("login", "nouveau"),
            ("role", "auditor"),
            ("scope", "departement:062\ncommune:062/Calais"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("value=\"nouveau\" aria-invalid=\"true\""),
        "{}",
        r.body
    );
    assert!(form_html(&r.body, "nouveau-compte").contains("<option value=\"auditor\" selected>"));
    assert!(
        r.body
            .contains(">departement:062\ncommune:062/Calais</textarea>")
    );
    let r = send_admin(
        "/utilisateurs",
        &[
            ("login", "narnia"),
            ("role", "auditor"),
            ("scope", "academie:Narnia"),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains(
            "aucun établissement de ce serveur n'est pour l'instant dans : académie Narnia"
        ),
        "{}",
        r.body
    );
    assert_eq!(
        send_admin(
            "/utilisateurs/jetable/role",
            &[("role", "auditor"), ("scope", "academie:Lille")]
        )
        .status,
        200
    );
    // An admin's reset closes the account's sessions and revokes its API
    // tokens (the account may be in the wrong hands).
    let jetable_token = cli(&["user", "token", "create", "--data-dir", &d, "jetable"])
        .trim()
        .to_owned();
    let api = |token: &str| web.get("/api/v1/admin/machines", None, Some(token)).status;
    assert_eq!(api(&jetable_token), 200);
    let reset = send_admin("/utilisateurs/jetable/mot-de-passe", &[]);
    assert_eq!(reset.status, 200);
    assert!(reset.body.contains("jetons d'API personnels révoqués"));
    assert_eq!(api(&jetable_token), 401, "reset revokes API tokens");
    let marker = "id=\"mot-de-passe-genere\">";
    let at = reset.body.find(marker).unwrap() + marker.len();
    let jetable_pw = reset.body[at..].split('<').next().unwrap().to_owned();
    let (jc, _) = web.login("jetable", &jetable_pw);
    assert_eq!(
        send_admin("/utilisateurs/jetable/etat", &[("etat", "desactive")]).status,
        303
    );
    assert_eq!(
        web.get("/", Some(&jc), None).status,
        303,
        "disabling closes sessions"
    );
    assert_eq!(
        send_admin("/utilisateurs/inconnu/etat", &[("etat", "desactive")]).status,
        404
    );
    assert_eq!(
        send_admin(
            "/utilisateurs",
            &[
                ("login", "x y"),
                ("role", "auditor"),
                ("scope", "academie:Lille")
            ]
        )
        .status,
        400
    );
    // An admin cannot take away its own admin role (nothing changes).
    let before = audit_len(&f);
    let r = send_admin(
        "/utilisateurs/chef/role",
        &[("role", "auditor"), ("scope", "academie:Lille")],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("propre rôle d'administrateur"),
        "{}",
        r.body
    );
    assert!(r.body.contains("href=\"#u-chef\">Corriger le compte chef"));
    assert!(r.body.contains(
        "id=\"r-chef\" name=\"role\" aria-invalid=\"true\" aria-describedby=\"erreur-formulaire\""
    ));
    assert_eq!(audit_len(&f), before);
    // A scope refused for an account that does not exist: no form, 404.
    assert_eq!(
        send_admin("/utilisateurs/inconnu/role", &[("role", "auditor")]).status,
        404
    );

    // Retiring is confirmed, or refused with nothing changed; actions say
    // what they did; a bulk refusal changes no machine at all.
    let machine_actions = format!("/machines/{m_in}/actions");
    let r = send_admin(&machine_actions, &[("action", "retire")]);
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("cochez la case de confirmation"),
        "{}",
        r.body
    );
    let other_actions = format!("/etablissements/{OTHER}/actions");
    let r = send_admin(
        &other_actions,
        &[("action", "retire"), ("machine", m_out.as_str())],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        audit_len(&f),
        before,
        "unconfirmed retirements change nothing"
    );
    let r = send_admin(
        &other_actions,
        &[
            ("action", "retire"),
            ("machine", m_out.as_str()),
            ("confirmer", "oui"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("1 machine(s) retirée(s)"), "{}", r.body);
    // Retiring it again from its page: said, nothing changed, and no link
    // to a retire form the page no longer has.
    let before = audit_len(&f);
    let r = send_admin(
        &format!("/machines/{m_out}/actions"),
        &[("action", "retire")],
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("déjà retirée"), "{}", r.body);
    assert!(!r.body.contains("href=\"#retrait\""));
    assert_eq!(audit_len(&f), before);
    let before = audit_len(&f);
    let r = send_admin(
        &other_actions,
        &[("action", "approve"), ("machine", m_out.as_str())],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("Retirée de la flotte : pc-dehors-99"),
        "{}",
        r.body
    );
    // « Tout sélectionner » pre-checks this page's rows (no script).
    let all = web.get(
        &format!("/etablissements/{UAI}?tout=1"),
        Some(&a.cookie),
        None,
    );
    assert!(
        all.body.contains(&format!("id=\"sel-{m_in}\" checked"))
            && all.body.contains("Tout désélectionner"),
        "{}",
        all.body
    );
    let none = web.get(&format!("/etablissements/{UAI}"), Some(&a.cookie), None);
    assert!(!none.body.contains(&format!("id=\"sel-{m_in}\" checked")));
    assert!(none.body.contains("&amp;tout=1#actions-groupees"));
    assert_eq!(
        web.get(
            &format!("/etablissements/{UAI}?tout=2"),
            Some(&a.cookie),
            None
        )
        .status,
        400
    );
    // Approving a machine already approved: nothing to do, nothing logged.
    let r = send_admin(
        &format!("/etablissements/{UAI}/actions"),
        &[("action", "approve"), ("machine", m_in.as_str())],
    );
    assert!(r.body.contains("0 machine(s) approuvée(s)"), "{}", r.body);
    assert_eq!(audit_len(&f), before);
    let r = send_admin(
        &format!("/etablissements/{UAI}/actions"),
        &[
            ("action", "include"),
            ("profile", "jamais-publie"),
            ("machine", m_in.as_str()),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .contains("Profil « jamais-publie » ajouté à 1 machine(s)")
            && r.body.contains("ATTENTION : « jamais-publie » pas publié"),
        "{}",
        r.body
    );
    let r = send_admin(
        &machine_actions,
        &[("action", "exclude"), ("profile", "jamais-publie")],
    );
    assert!(
        r.body
            .contains("Profil « jamais-publie » retiré de cette machine")
    );
    // A bad name: the exception comes back as typed, its effect kept, the
    // reason at the top with a link to the form.
    let before = audit_len(&f);
    let r = send_admin(
        &machine_actions,
        &[("action", "exclude"), ("profile", "Pas Bon")],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("href=\"#derogation\">Corriger la dérogation")
    );
    assert!(
        r.body.contains("value=\"Pas Bon\" aria-invalid=\"true\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("<option value=\"exclude\" selected>"));
    assert_eq!(audit_len(&f), before);

    // A POST from another site is refused even with the token.
    let mut evil = web
        .agent
        .post(format!("{}/compte/jetons", web.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://ailleurs.example")
        .header("cookie", format!("__Host-nird_session={}", a.cookie))
        .send(format!("label=x&csrf={}", a.csrf))
        .unwrap();
    assert_eq!(evil.status().as_u16(), 403);
    let _ = evil.body_mut().read_to_string();

    // Logout: the session is gone for good.
    for p in &people {
        let before = audit_len(&f);
        let r = web.post("/deconnexion", Some(&p.cookie), &[("csrf", &p.csrf)]);
        assert_eq!(r.status, 303);
        assert!(r.cookies.iter().any(|c| c.contains("Max-Age=0")));
        assert!(audit_len(&f) > before);
        assert_eq!(web.get("/", Some(&p.cookie), None).status, 303);
        assert_eq!(
            web.post(
                "/compte/jetons",
                Some(&p.cookie),
                &[("label", "x"), ("csrf", &p.csrf)]
            )
            .status,
            303
        );
    }

    // Password change: needs the current password, keeps this session,
    // closes the others, and the new password logs in.
    let (g1, g1_csrf) = web.login("gest", &gest_pw);
    let (g2, _) = web.login("gest", &gest_pw);
    let short = web.post(
        "/compte/mot-de-passe",
        Some(&g1),
        &[
            ("csrf", &g1_csrf),
            ("current", &gest_pw),
            ("new", "court"),
            ("confirm", "court"),
        ],
    );
    assert_eq!(short.status, 400);
    // Said above the password form, the new password marked; no password
    // is ever written back into the page.
    assert!(short.body.contains("12 caractères"), "{}", short.body);
    assert!(short.body.contains(
        "id=\"nouveau\" name=\"new\" autocomplete=\"new-password\" minlength=\"12\" required aria-invalid=\"true\""
    ));
    assert!(!short.body.contains("court\"") && !short.body.contains(gest_pw.as_str()));
    let label = web.post(
        "/compte/jetons",
        Some(&g1),
        &[("csrf", &g1_csrf), ("label", &"x".repeat(101))],
    );
    assert_eq!(label.status, 400);
    assert!(
        label
            .body
            .contains(&format!("value=\"{}\"", "x".repeat(100)))
    );
    let new_pw = "un nouveau mot de passe solide";
    let changed = web.post(
        "/compte/mot-de-passe",
        Some(&g1),
        &[
            ("csrf", &g1_csrf),
            ("current", &gest_pw),
            ("new", new_pw),
            ("confirm", new_pw),
        ],
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(web.get("/", Some(&g1), None).status, 200);
    assert_eq!(
        web.get("/", Some(&g2), None).status,
        303,
        "other sessions closed"
    );
    let old = web.post(
        "/connexion",
        None,
        &[("login", "gest"), ("password", &gest_pw)],
    );
    assert_eq!(old.status, 401);
    let gest_pw = new_pw.to_owned();

    // Absolute and idle expiry.
    let (c1, _) = web.login("gest", &gest_pw);
    assert_eq!(web.get("/", Some(&c1), None).status, 200);
    sql(
        &f,
        "UPDATE sessions SET created_at = created_at - 13 * 3600 WHERE revoked_at IS NULL",
    );
    assert_eq!(
        web.get("/", Some(&c1), None).status,
        303,
        "12 h absolute expiry"
    );
    let (c2, _) = web.login("gest", &gest_pw);
    sql(
        &f,
        "UPDATE sessions SET last_seen = last_seen - 9 * 3600 WHERE revoked_at IS NULL",
    );
    assert_eq!(web.get("/", Some(&c2), None).status, 303, "8 h idle expiry");
    // A disabled account cannot log in; its API token is refused.
    let jet = web.post(
        "/connexion",
        None,
        &[("login", "jetable"), ("password", &jetable_pw)],
    );
    assert_eq!(jet.status, 401);

    // Rate limit: 5 failures for one account, then even the right
    // password is refused, with the French message; the audit log has the
    // failures with the address. The first was the wrong current password
    // given to « Mon compte » above: it counts as a failed login.
    for _ in 0..4 {
        let r = web.post(
            "/connexion",
            None,
            &[("login", "aud"), ("password", "mauvais")],
        );
        assert_eq!(r.status, 401);
        assert!(r.body.contains("Identifiant ou mot de passe incorrect"));
    }
    let r = web.post(
        "/connexion",
        None,
        &[("login", "aud"), ("password", &aud_pw)],
    );
    assert_eq!(r.status, 429);
    assert!(r.body.contains("Trop de tentatives"));
    assert!(r.cookies.is_empty());
    let conn = rusqlite::Connection::open(f.data.database()).unwrap();
    let failed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed' AND detail LIKE '%127.0.0.1%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(failed >= 5);
    // Another account from the same address still logs in (20 per address).
    web.login("chef", &admin_pw);
    drop(conn);
    server.stop().unwrap();
}

/// A school search reads each distinct package list once: machines that
/// share one are all found under its versions, in name order, and a
/// machine whose latest inventory has no list is counted apart.
#[test]
fn a_school_search_finds_every_machine_of_a_shared_list() {
    let f = Fixture::new();
    let d = f.dir().to_owned();
    let token = f.token(&["--uses", "5"]);
    let admin_pw = password_of(&cli(&[
        "user",
        "add",
        "--data-dir",
        d.as_str(),
        "chef",
        "--role",
        "admin",
    ]));
    let server = Server::start(&f.data);
    let client = f.client();
    // Two machines installed from one image (one list), one of another.
    for (host, serial) in [
        ("pc-b", "IMAGE-1"),
        ("pc-a", "IMAGE-1"),
        ("pc-c", "IMAGE-2"),
    ] {
        enroll(&client, &server, token.trim(), host, serial, "passed");
    }
    // A fourth whose agent could not read its packages.
    let (mut inv, _) = inventory("pc-d", "IMAGE-3", "passed");
    inv["software"] = json!({"unavailable": {"reason": "permission_denied"}});
    let hash = nird_proto::hash::content_hash(&inv).unwrap();
    let req = json!({"token": token.trim(), "hostname": "pc-d", "inventory": inv, "inventory_hash": hash});
    let r = client.post(&server.api("/enroll"), None, req.to_string().as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());

    let web = Web::new(&f, &server);
    let (cookie, _) = web.login("chef", &admin_pw);
    let found = web.get(
        &format!("/etablissements/{UAI}/logiciels?q=gcompris-qt"),
        Some(&cookie),
        None,
    );
    assert_eq!(found.status, 200);
    let body = &found.body;
    let shared = body.find("3.1-1+IMAGE-1").expect("the shared version");
    let other = body
        .find("3.1-1+IMAGE-2")
        .expect("the other image's version");
    let (a, b, c) = (
        body.find(">pc-a<").unwrap(),
        body.find(">pc-b<").unwrap(),
        body.find(">pc-c<").unwrap(),
    );
    assert!(shared < a && a < b && b < other && other < c, "{body}");
    assert!(body.contains("pc-d"), "the machine without a list is named");
    let none = web.get(
        &format!("/etablissements/{UAI}/logiciels?q=gimp"),
        Some(&cookie),
        None,
    );
    assert!(none.body.contains("Aucune des 3 machines"), "{}", none.body);
}
