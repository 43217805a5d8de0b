//! The collectivités' audit over real HTTPS, on a seeded fleet whose true
//! totals are known by construction: machines enrolled through the agent
//! API with real inventory documents (the ThinkPad T430 fixture, varied
//! machine by machine), checked in, some moved back in time in the
//! database (enrolment, last contact) and one retired with the CLI.
//!
//! Checks the figures (counts per blocker, per age band, memory, disks,
//! upgrades, CO2e with the default factors and with changed ones), that an
//! auditor's totals are the sum over their schools and never more, that
//! anything outside an auditor's département answers 404 (territory,
//! school, machine, passport, exports, API) and that their exports hold no
//! row from outside, and that the GLPI bulk export validates against GLPI's
//! schema document by document.

mod common;

use std::path::PathBuf;
use std::sync::mpsc;

use common::{Fixture, UAI, cli};
use nird_proto::api::{CheckinRequest, EnrollRequest, ProfileRef};
use nird_proto::inventory::Inventory;
use nird_server::audit::co2::Co2Factors;
use nird_server::data_dir::DataDir;
use nird_server::http::{ServeConfig, run};
use serde_json::Value;

/// A collège of the same département (062) as `UAI`.
const COLLEGE: &str = "0620057A";
/// A lycée in Paris (075): outside the auditor's scope.
const OUTSIDE: &str = "0750001U";
const GIB: u64 = 1024 * 1024 * 1024;

/// One machine of the seeded fleet, and what is true of it by construction.
#[derive(Clone)]
struct Spec {
    school: &'static str,
    host: String,
    serial: String,
    laptop: bool,
    tpm2: bool,
    /// 0: Kaby Lake R (2017, supported), 1: Core 2 (2008), 2: Ivy Bridge (2012).
    cpu: u8,
    ram_gib: u64,
    modules: u32,
    slots: u32,
    soldered: bool,
    /// "ssd32", "hdd500", "nvme256".
    disk: &'static str,
    secure_boot: bool,
    oem: bool,
    wear: Option<u8>,
    failing: bool,
    /// External screens (laptops also have their built-in panel, which is
    /// not counted).
    screens: u8,
    /// Days ago it was enrolled, and last seen (`None`: now).
    enrolled_days_ago: Option<i64>,
    seen_days_ago: Option<i64>,
    retired: bool,
}

impl Spec {
    fn build_year(&self) -> i64 {
        match self.cpu {
            0 => 2018, // BIOS 2018, CPU 2017
            1 => 2009, // BIOS 2009, CPU 2008
            _ => 2013, // BIOS 2013, CPU 2012
        }
    }
    fn b_tpm(&self) -> bool {
        !self.tpm2
    }
    fn b_cpu(&self) -> bool {
        self.cpu != 0
    }
    fn b_fw(&self) -> bool {
        !self.secure_boot
    }
    fn b_ram(&self) -> bool {
        self.ram_gib < 4
    }
    fn b_disk(&self) -> bool {
        self.disk == "ssd32"
    }
    fn ineligible(&self) -> bool {
        self.b_tpm() || self.b_cpu() || self.b_fw() || self.b_ram() || self.b_disk()
    }
    fn in_use(&self) -> bool {
        !self.retired && self.seen_days_ago.unwrap_or(0) <= 30
    }
}

fn fleet() -> Vec<Spec> {
    let mut out = Vec::new();
    for (school, n) in [(UAI, 24), (COLLEGE, 12), (OUTSIDE, 8)] {
        for i in 0..n {
            let ram_gib = match i % 5 {
                0 => 2,
                1 => 4,
                _ => 8,
            };
            out.push(Spec {
                school,
                host: format!("pc-{}-{i:02}", &school[..3]),
                serial: format!("SN{}{i:03}", &school[..4]),
                laptop: i % 2 == 0,
                tpm2: i % 3 == 0,
                cpu: (i % 4).min(2) as u8,
                ram_gib,
                modules: if ram_gib == 8 { 2 } else { 1 },
                slots: if ram_gib == 4 { 1 } else { 2 },
                soldered: i % 2 == 0,
                disk: match i % 6 {
                    0 => "ssd32",
                    1 | 2 => "hdd500",
                    _ => "nvme256",
                },
                secure_boot: i % 2 == 1,
                oem: i % 3 == 1,
                wear: (i % 2 == 0).then_some(((i * 7) % 100) as u8),
                failing: i % 9 == 0,
                screens: (i % 3) as u8,
                enrolled_days_ago: match i % 10 {
                    9 | 8 => Some(400),
                    _ => None,
                },
                seen_days_ago: match i % 10 {
                    9 => Some(40),
                    8 => Some(1),
                    _ => None,
                },
                retired: i == 7,
            });
        }
    }
    out
}

fn fixture_inventory() -> Inventory {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../agent/tests/fixtures/laptop-t430.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn inventory_of(s: &Spec) -> Value {
    let mut v = serde_json::to_value(fixture_inventory()).unwrap();
    v["agent_version"] = "0.2.0".into();
    v["identity"]["hostname"]["value"] = s.host.clone().into();
    v["identity"]["serial"]["value"] = s.serial.clone().into();
    v["identity"]["chassis"]["value"] = if s.laptop {
        serde_json::json!({"kind": "laptop", "smbios_code": 10})
    } else {
        serde_json::json!({"kind": "desktop", "smbios_code": 3})
    };
    v["firmware"]["tpm"]["value"] = if s.tpm2 {
        serde_json::json!({"present": true, "version": "2.0"})
    } else {
        serde_json::json!({"present": false})
    };
    v["firmware"]["secure_boot"]["value"] = if s.secure_boot {
        "disabled"
    } else {
        "unsupported"
    }
    .into();
    v["firmware"]["windows_oem_licence"] = serde_json::json!({"value": s.oem});
    let (name, model, stepping, bios) = match s.cpu {
        0 => (
            "Intel(R) Core(TM) i5-8250U CPU @ 1.60GHz",
            0x8e,
            10,
            "2018-03-01",
        ),
        1 => (
            "Intel(R) Core(TM)2 Duo CPU P8600 @ 2.40GHz",
            0x17,
            10,
            "2009-01-01",
        ),
        _ => (
            "Intel(R) Core(TM) i5-3320M CPU @ 2.60GHz",
            0x3a,
            9,
            "2013-05-14",
        ),
    };
    v["cpu"]["model_name"]["value"] = name.into();
    v["cpu"]["model"]["value"] = model.into();
    v["cpu"]["stepping"]["value"] = stepping.into();
    v["firmware"]["bios_date"]["value"] = bios.into();
    let per = s.ram_gib * GIB / u64::from(s.modules);
    let modules: Vec<Value> = (0..s.modules)
        .map(|m| {
            serde_json::json!({"locator": format!("DIMM{m}"), "size_bytes": per, "kind": "DDR3",
                "form_factor": if s.soldered { "ROW_OF_CHIPS" } else { "SODIMM" }})
        })
        .collect();
    v["memory"]["modules"]["value"] = modules.into();
    v["memory"]["slots"]["value"] = s.slots.into();
    v["memory"]["total_bytes"]["value"] = (s.ram_gib * GIB - 200_000_000).into();
    let (kind, size) = match s.disk {
        "ssd32" => ("ssd", 32_000_000_000u64),
        "hdd500" => ("hdd", 500_107_862_016),
        _ => ("nvme", 256_060_514_304),
    };
    let health = if s.failing { "failing" } else { "passed" };
    v["storage"]["disks"]["value"] = serde_json::json!([{
        "name": "sda", "model": {"value": "DISK"}, "serial": {"value": format!("D{}", s.serial)},
        "size_bytes": size, "kind": kind, "removable": false,
        "smart": {"value": {"health": health}}}]);
    v["batteries"]["value"] = match s.wear {
        Some(w) => serde_json::json!([{"name": "BAT0", "design_capacity_wh": {"value": 50.0},
            "full_capacity_wh": {"value": 40.0}, "wear_percent": {"value": w},
            "cycle_count": {"value": 100}}]),
        None => serde_json::json!([]),
    };
    let mut monitors: Vec<Value> = (0..s.screens)
        .map(|m| {
            serde_json::json!({"connector": format!("DP-{m}"), "builtin": false,
                "manufacturer_id": "DEL", "product_code": 41_200 + u16::from(m),
                "model": "DELL P2419H", "year": 2019, "width_cm": 53, "height_cm": 30,
                "digital": true})
        })
        .collect();
    if s.laptop {
        monitors.push(serde_json::json!({"connector": "eDP-1", "builtin": true,
            "manufacturer_id": "LGD", "product_code": 1_234, "digital": true}));
    }
    v["monitors"] = serde_json::json!({ "value": monitors });
    // The document must parse as a real inventory.
    let _: Inventory = serde_json::from_value(v.clone()).expect("valid inventory");
    v
}

/// The server in-process on 127.0.0.1:0, with the given CO2e factors.
struct Server {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    fn start(data: &DataDir, co2: Co2Factors) -> Self {
        let data = data.clone();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                addr_tx.send(listener.local_addr()?)?;
                let mut config = ServeConfig::from_data_dir(&data, None, None)?;
                config.co2 = co2;
                run(listener, config, async {
                    let _ = stop_rx.await;
                })
                .await
            })
        });
        let port = addr_rx.recv().expect("server did not start").port();
        Server {
            port,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap().unwrap();
        }
    }
}

struct Web {
    agent: ureq::Agent,
}

struct Resp {
    status: u16,
    cookies: Vec<String>,
    body: String,
}

impl Web {
    fn new(ca: PathBuf) -> Self {
        let pem = std::fs::read(ca).unwrap();
        let cert = ureq::tls::Certificate::from_pem(&pem).unwrap();
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
            .build();
        Web {
            agent: ureq::Agent::config_builder()
                .tls_config(tls)
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
        }
    }

    fn finish(mut r: ureq::http::Response<ureq::Body>) -> Resp {
        Resp {
            status: r.status().as_u16(),
            cookies: r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
            body: r
                .body_mut()
                .with_config()
                .limit(64 * 1024 * 1024)
                .read_to_string()
                .unwrap_or_default(),
        }
    }

    fn get(&self, url: &str, cookie: Option<&str>, bearer: Option<&str>) -> Resp {
        let mut req = self.agent.get(url);
        if let Some(c) = cookie {
            req = req.header("cookie", format!("__Host-nird_session={c}"));
        }
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        Self::finish(req.call().unwrap())
    }

    fn post_json(&self, url: &str, auth: Option<&str>, body: &impl serde::Serialize) -> Resp {
        let mut req = self
            .agent
            .post(url)
            .header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        Self::finish(req.send(serde_json::to_vec(body).unwrap()).unwrap())
    }

    fn login(&self, server: &Server, login: &str, password: &str) -> String {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("login", login)
            .append_pair("password", password)
            .finish();
        let r = Self::finish(
            self.agent
                .post(server.url("/connexion"))
                .header("content-type", "application/x-www-form-urlencoded")
                .send(body)
                .unwrap(),
        );
        assert_eq!(r.status, 303, "login {login}: {}", r.body);
        let set = r
            .cookies
            .iter()
            .find(|c| c.starts_with("__Host-nird_session="))
            .expect("session cookie");
        set["__Host-nird_session=".len()..]
            .split(';')
            .next()
            .unwrap()
            .to_owned()
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

/// The seeded world: data dir, fleet, machine ids, logins.
struct World {
    f: Fixture,
    specs: Vec<(Spec, String)>,
    admin_pw: String,
    aud_pw: String,
    gest_pw: String,
    admin_token: String,
    aud_token: String,
}

fn seed() -> World {
    let f = Fixture::new();
    let d = f.dir().to_owned();
    cli(&[
        "school",
        "add",
        "--data-dir",
        &d,
        "--uai",
        COLLEGE,
        "--name",
        "Collège Pasteur",
        "--commune",
        "Calais",
        "--academie",
        "Lille",
        "--kind",
        "college",
    ]);
    cli(&[
        "school",
        "add",
        "--data-dir",
        &d,
        "--uai",
        OUTSIDE,
        "--name",
        "Lycée Dehors",
        "--commune",
        "Paris",
        "--academie",
        "Paris",
        "--kind",
        "lycee",
    ]);
    let pw = |args: &[&str]| {
        let mut a = vec!["user", "add", "--data-dir", d.as_str()];
        a.extend_from_slice(args);
        password_of(&cli(&a))
    };
    let admin_pw = pw(&["chef", "--role", "admin"]);
    let aud_pw = pw(&["aud", "--role", "auditor", "--scope", "departement:062"]);
    let gest_pw = pw(&["gest", "--role", "school", "--school", UAI]);
    let token = |login: &str| {
        cli(&["user", "token", "create", "--data-dir", &d, login])
            .trim()
            .to_owned()
    };
    let admin_token = token("chef");
    let aud_token = token("aud");

    let server = Server::start(&f.data, Co2Factors::default());
    let web = Web::new(f.data.ca_cert());
    let mut specs = Vec::new();
    for school in [UAI, COLLEGE, OUTSIDE] {
        let enrol_token = cli(&[
            "token",
            "create",
            "--data-dir",
            &d,
            "--school",
            school,
            "--uses",
            "100",
        ])
        .trim()
        .to_owned();
        for s in fleet().into_iter().filter(|s| s.school == school) {
            let inv = inventory_of(&s);
            let hash = nird_proto::hash::content_hash(&inv).unwrap();
            let req = EnrollRequest {
                token: enrol_token.clone(),
                hostname: s.host.clone(),
                inventory: inv,
                inventory_hash: hash.clone(),
            };
            let r = web.post_json(&server.url("/api/v1/enroll"), None, &req);
            assert_eq!(r.status, 200, "{}", r.body);
            let body: Value = serde_json::from_str(&r.body).unwrap();
            let id = body["machine_id"].as_str().unwrap().to_owned();
            let auth =
                nird_proto::api::machine_authorization(&id, body["secret"].as_str().unwrap());
            // A check-in reporting an applied profile.
            let reply = web.post_json(
                &server.url("/api/v1/checkin"),
                Some(&auth),
                &CheckinRequest {
                    inventory_hash: hash,
                    inventory: None,
                    inventory_delta: None,
                    applied: vec![ProfileRef {
                        name: "nird-base".into(),
                        version: 3,
                    }],
                    reports: vec![],
                    trust: None,
                },
            );
            assert_eq!(reply.status, 200, "{}", reply.body);
            specs.push((s, id));
        }
    }
    server.stop();
    // Time travel (the test plays the clock): enrolment and last contact.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let db = rusqlite::Connection::open(f.data.database()).unwrap();
    for (s, id) in &specs {
        if let Some(e) = s.enrolled_days_ago {
            db.execute(
                "UPDATE machines SET enrolled_at = ?2 WHERE id = ?1",
                rusqlite::params![id, now - e * 86_400],
            )
            .unwrap();
        }
        if let Some(seen) = s.seen_days_ago {
            db.execute(
                "UPDATE machines SET last_seen = ?2 WHERE id = ?1",
                rusqlite::params![id, now - seen * 86_400],
            )
            .unwrap();
        }
        if s.retired {
            cli(&["machine", "retire", "--data-dir", &d, id]);
        }
    }
    drop(db);
    World {
        f,
        specs,
        admin_pw,
        aud_pw,
        gest_pw,
        admin_token,
        aud_token,
    }
}

/// The expected in-use figures of the specs matching `pick`.
fn expected(
    specs: &[(Spec, String)],
    pick: impl Fn(&Spec) -> bool,
) -> serde_json::Map<String, Value> {
    let year = i64::from(time::OffsetDateTime::now_utc().year());
    let used: Vec<&Spec> = specs
        .iter()
        .map(|(s, _)| s)
        .filter(|s| pick(s) && s.in_use())
        .collect();
    let n = |f: &dyn Fn(&Spec) -> bool| used.iter().filter(|s| f(s)).count() as i64;
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: i64| {
        m.insert(k.into(), v.into());
    };
    put("en_service", used.len() as i64);
    put("portables", n(&|s| s.laptop));
    put("fixes", n(&|s| !s.laptop));
    put("w11_incompatibles", n(&|s| s.ineligible()));
    put("w11_compatibles", n(&|s| !s.ineligible()));
    put("bloquant_tpm", n(&|s| s.b_tpm()));
    put("bloquant_processeur", n(&|s| s.b_cpu()));
    put("bloquant_micrologiciel", n(&|s| s.b_fw()));
    put("bloquant_memoire", n(&|s| s.b_ram()));
    put("bloquant_disque", n(&|s| s.b_disk()));
    put("licence_oem", n(&|s| s.oem));
    // The i5-8250U is on Microsoft's list; the Core 2 Duo P8600 and the
    // i5-3320M are not (judged by the family / model rule).
    put("w11_cpu_liste", n(&|s| s.cpu == 0));
    put("w11_cpu_estimation", n(&|s| s.cpu != 0));
    put(
        "ecrans",
        used.iter().map(|s| i64::from(s.screens)).sum::<i64>(),
    );
    put("licence_oem_incompatibles", n(&|s| s.oem && s.ineligible()));
    let age = |s: &Spec| year - s.build_year();
    put("age_0_4", n(&|s| age(s) < 5));
    put("age_5_7", n(&|s| (5..=7).contains(&age(s))));
    put("age_8_10", n(&|s| (8..=10).contains(&age(s))));
    put("age_11_14", n(&|s| (11..=14).contains(&age(s))));
    put("age_15_plus", n(&|s| age(s) >= 15));
    put("memoire_moins_2", 0);
    put("memoire_2_4", n(&|s| s.ram_gib == 2));
    put("memoire_4_8", n(&|s| s.ram_gib == 4));
    put("memoire_8_16", n(&|s| s.ram_gib == 8));
    put("disque_hdd", n(&|s| s.disk == "hdd500"));
    put("disque_ssd", n(&|s| s.disk == "ssd32"));
    put("disque_nvme", n(&|s| s.disk == "nvme256"));
    put("disque_moins_128", n(&|s| s.disk == "ssd32"));
    put("disque_256_512", n(&|s| s.disk != "ssd32"));
    put("smart_defaillant", n(&|s| s.failing));
    put("avec_batterie", n(&|s| s.wear.is_some()));
    put("batterie_usee", n(&|s| s.wear.is_some_and(|w| w > 50)));
    put("evolution_ssd", n(&|s| s.disk == "hdd500"));
    // Below 8 GB and a free slot (2 GB: one module in two slots) or a
    // socketed module.
    put(
        "evolution_memoire",
        n(&|s| s.ram_gib < 8 && (s.slots > s.modules || !s.soldered)),
    );
    put(
        "memoire_non_extensible",
        n(&|s| s.ram_gib < 8 && s.slots == s.modules && s.soldered),
    );
    m
}

fn reuse(web: &Web, server: &Server, token: &str, query: &str) -> (u16, Value) {
    let r = web.get(
        &server.url(&format!("/api/v1/admin/reuse?{query}")),
        None,
        Some(token),
    );
    let v = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

fn assert_figures(got: &Value, want: &serde_json::Map<String, Value>, what: &str) {
    for (k, v) in want {
        assert_eq!(&got["figures"][k], v, "{what}: figure {k}");
    }
}

#[test]
fn audit_figures_scope_exports_and_glpi() {
    let w = seed();
    let year = time::OffsetDateTime::now_utc().year();
    let period = format!("du={year}-01-01&au={year}-12-31");
    let server = Server::start(&w.f.data, Co2Factors::default());
    let web = Web::new(w.f.data.ca_cert());

    // --- Figures known by construction (admin: the whole fleet).
    let (status, all) = reuse(&web, &server, &w.admin_token, &period);
    assert_eq!(status, 200, "{all}");
    let want_all = expected(&w.specs, |_| true);
    assert_figures(&all, &want_all, "admin");
    let retired = w.specs.iter().filter(|(s, _)| s.retired).count() as i64;
    assert_eq!(all["figures"]["retirees"], retired);
    let this_period = w
        .specs
        .iter()
        .filter(|(s, _)| s.enrolled_days_ago.is_none())
        .count() as i64;
    assert_eq!(all["figures"]["inscrites_periode"], this_period);
    assert_eq!(all["figures"]["inscrites"], w.specs.len() as i64 - retired);
    // Blocker combinations add up to the refused machines.
    let combos: i64 = all["windows11_blocker_combinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["machines"].as_i64().unwrap())
        .sum();
    assert_eq!(combos, want_all["w11_incompatibles"].as_i64().unwrap());
    // CO2e with the default factors: laptops × 182.6 + desktops × 204.4,
    // plus 27 per year of extended life (machines enrolled last year and
    // still seen: from 1 January to their last contact, 1 day ago).
    let laptops = want_all["portables"].as_f64().unwrap();
    let desktops = want_all["fixes"].as_f64().unwrap();
    let manufacture = laptops * 182.6 + desktops * 204.4;
    assert!(
        (all["co2e"]["manufacture_avoided_kg"].as_f64().unwrap() - manufacture).abs() < 0.11,
        "{}",
        all["co2e"]
    );
    // Screens: external ones on in-use machines × 65.9 (built-in panels
    // are counted with their laptop).
    let screens = want_all["ecrans"].as_f64().unwrap();
    assert!(screens > 0.0);
    assert!(
        (all["co2e"]["screens_manufacture_avoided_kg"]
            .as_f64()
            .unwrap()
            - screens * 65.9)
            .abs()
            < 0.11,
        "{}",
        all["co2e"]
    );
    let now = time::OffsetDateTime::now_utc();
    let jan1 = now
        .date()
        .replace_ordinal(1)
        .unwrap()
        .midnight()
        .assume_utc();
    // Every machine enrolled last year was in reuse from 1 January to its
    // last contact (their estimated build year + 5 is before 2024).
    let extended_days: f64 = w
        .specs
        .iter()
        .filter(|(s, _)| s.enrolled_days_ago == Some(400))
        .map(|(s, _)| {
            let seen = now - time::Duration::days(s.seen_days_ago.unwrap_or(0));
            ((seen - jan1).whole_seconds().max(0)) as f64 / 86_400.0
        })
        .sum();
    let years = extended_days / 365.2425;
    assert!(years > 0.0);
    let got_years = all["co2e"]["extended_life_years"].as_f64().unwrap();
    assert!((got_years - years).abs() < 0.02, "{got_years} vs {years}");
    let got_reuse = all["co2e"]["extended_use_kg"].as_f64().unwrap();
    assert!((got_reuse - years * 27.0).abs() < 0.6, "{got_reuse}");
    // Method and sources travel with the figures.
    assert!(all["method"].to_string().contains("Fabrication évitée"));
    assert!(all["sources"].to_string().contains("ADEME"));

    // --- The auditor of département 062: their schools only, and their
    // totals are the sum of their schools' — never more.
    let (status, aud) = reuse(&web, &server, &w.aud_token, &period);
    assert_eq!(status, 200);
    let want_062 = expected(&w.specs, |s| s.school != OUTSIDE);
    assert_figures(&aud, &want_062, "auditor");
    let schools: Vec<&str> = aud["schools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["uai"].as_str().unwrap())
        .collect();
    assert_eq!(schools, vec![UAI, COLLEGE]);
    let mut sum = std::collections::BTreeMap::<String, i64>::new();
    for uai in [UAI, COLLEGE] {
        let (st, one) = reuse(
            &web,
            &server,
            &w.aud_token,
            &format!("{period}&noeud=uai:{uai}"),
        );
        assert_eq!(st, 200);
        assert_figures(&one, &expected(&w.specs, |s| s.school == uai), uai);
        for (k, v) in one["figures"].as_object().unwrap() {
            *sum.entry(k.clone()).or_default() += v.as_i64().unwrap();
        }
    }
    for (k, v) in aud["figures"].as_object().unwrap() {
        assert_eq!(
            sum[k],
            v.as_i64().unwrap(),
            "auditor total {k} = sum of schools"
        );
        assert!(v.as_i64().unwrap() <= all["figures"][k].as_i64().unwrap());
    }
    assert!(
        aud["figures"]["en_service"].as_i64() < all["figures"]["en_service"].as_i64(),
        "the outside school is not counted"
    );

    // --- Outside the auditor's scope: 404 everywhere.
    let outside_id = &w.specs.iter().find(|(s, _)| s.school == OUTSIDE).unwrap().1;
    let inside_id = &w.specs.iter().find(|(s, _)| s.school == UAI).unwrap().1;
    for q in [
        format!("noeud=uai:{OUTSIDE}"),
        "noeud=departement:075".into(),
        "noeud=academie:Paris".into(),
    ] {
        assert_eq!(reuse(&web, &server, &w.aud_token, &q).0, 404, "API {q}");
    }
    let aud = web.login(&server, "aud", &w.aud_pw);
    let outside_paths = [
        format!("/audit?noeud=uai:{OUTSIDE}"),
        "/audit/rapport?noeud=departement:075".into(),
        "/audit/chiffres.csv?noeud=academie:Paris".into(),
        "/audit/chiffres.json?noeud=departement:075".into(),
        "/audit/machines.csv?noeud=departement:075".into(),
        "/audit/machines.json?noeud=departement:075".into(),
        "/audit/glpi.jsonl?noeud=departement:075".into(),
        format!("/machines/{outside_id}/fiche"),
        format!("/machines/{outside_id}/glpi.json"),
        format!("/etablissements/{OUTSIDE}/fiches"),
        format!("/etablissements/{OUTSIDE}"),
        format!("/machines/{outside_id}"),
    ];
    for p in &outside_paths {
        let r = web.get(&server.url(p), Some(&aud), None);
        assert_eq!(r.status, 404, "auditor GET {p}");
        assert!(!r.body.contains("Lycée Dehors"), "{p}");
    }
    for p in [
        format!("/audit?{period}"),
        "/audit/rapport".into(),
        format!("/machines/{inside_id}/fiche"),
        format!("/etablissements/{UAI}/fiches"),
        "/audit/dictionnaire".into(),
    ] {
        let r = web.get(&server.url(&p), Some(&aud), None);
        assert_eq!(r.status, 200, "auditor GET {p}: {}", r.body);
        for word in ["Lycée Dehors", OUTSIDE, "pc-075"] {
            assert!(!r.body.contains(word), "{p} mentions {word}");
        }
    }
    // A territory wider than the scope is not offered, and refused: the
    // académie of Lille also has département 059 now, outside it.
    let page = web.get(&server.url("/audit"), Some(&aud), None);
    assert!(
        page.body.contains("value=\"academie:Lille\""),
        "{}",
        page.body
    );
    cli(&[
        "school",
        "add",
        "--data-dir",
        w.f.dir(),
        "--uai",
        "0590117G",
        "--name",
        "École du Nord",
        "--commune",
        "Lille",
        "--academie",
        "Lille",
        "--kind",
        "ecole",
    ]);
    let page = web.get(&server.url("/audit"), Some(&aud), None);
    assert!(
        !page.body.contains("value=\"academie:Lille\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"departement:062\""));
    let r = web.get(
        &server.url("/audit/rapport?noeud=academie:Lille"),
        Some(&aud),
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        reuse(&web, &server, &w.aud_token, "noeud=academie:Lille").0,
        404,
        "the reuse API follows the pages"
    );
    assert_eq!(
        reuse(&web, &server, &w.aud_token, "noeud=departement:062").0,
        200
    );

    // Exports without a node: every row is from the auditor's schools.
    let csv = web.get(
        &server.url(&format!("/audit/machines.csv?{period}")),
        Some(&aud),
        None,
    );
    assert_eq!(csv.status, 200);
    assert!(csv.body.starts_with('\u{feff}'));
    let lines: Vec<&str> = csv.body.trim_end().split("\r\n").collect();
    let inside = w.specs.iter().filter(|(s, _)| s.school != OUTSIDE).count();
    assert_eq!(
        lines.len(),
        1 + inside,
        "header + one line per machine of 062"
    );
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains(UAI) || l.contains(COLLEGE))
    );
    assert!(!csv.body.contains(OUTSIDE) && !csv.body.contains("pc-075"));
    // What judged each processor, and each machine's external screens.
    let header: Vec<&str> = lines[0].trim_start_matches('\u{feff}').split(';').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (basis_col, screens_col) = (col("Jugement du processeur"), col("Écrans externes"));
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(';').collect()).collect();
    let listed = w
        .specs
        .iter()
        .filter(|(s, _)| s.school != OUTSIDE && s.cpu == 0)
        .count();
    assert_eq!(
        rows.iter().filter(|r| r[basis_col] == "liste").count(),
        listed
    );
    assert_eq!(
        rows.iter().filter(|r| r[basis_col] == "estimation").count(),
        inside - listed
    );
    let want_screens: u32 = w
        .specs
        .iter()
        .filter(|(s, _)| s.school != OUTSIDE)
        .map(|(s, _)| u32::from(s.screens))
        .sum();
    let got_screens: u32 = rows
        .iter()
        .map(|r| r[screens_col].parse::<u32>().unwrap())
        .sum();
    assert_eq!(got_screens, want_screens);
    let json = web.get(
        &server.url(&format!("/audit/machines.json?{period}")),
        Some(&aud),
        None,
    );
    let doc: Value = serde_json::from_str(&json.body).expect("valid streamed JSON");
    assert_eq!(doc["machines"].as_array().unwrap().len(), inside);
    assert!(doc["method"].is_array() && doc["sources"].is_array());
    let figures_csv = web.get(
        &server.url(&format!("/audit/chiffres.csv?{period}")),
        Some(&aud),
        None,
    );
    assert!(figures_csv.body.contains("en_service;"));
    assert!(figures_csv.body.contains("ADEME"));
    assert!(!figures_csv.body.contains("Lycée Dehors"));
    let glpi = web.get(&server.url("/audit/glpi.jsonl"), Some(&aud), None);
    assert_eq!(glpi.status, 200);
    assert_eq!(glpi.body.lines().count(), inside);
    assert!(!glpi.body.contains("SN0750"));
    // A gestionnaire has no audit at all, but prints their school's fiches.
    let gest = web.login(&server, "gest", &w.gest_pw);
    assert_eq!(
        web.get(&server.url("/audit"), Some(&gest), None).status,
        404
    );
    assert_eq!(
        web.get(
            &server.url(&format!("/etablissements/{UAI}/fiches")),
            Some(&gest),
            None
        )
        .status,
        200
    );
    assert_eq!(
        web.get(
            &server.url(&format!("/etablissements/{COLLEGE}/fiches")),
            Some(&gest),
            None
        )
        .status,
        404
    );

    // --- GLPI bulk export of the whole fleet: every document valid.
    let admin = web.login(&server, "chef", &w.admin_pw);
    let glpi = web.get(&server.url("/audit/glpi.jsonl"), Some(&admin), None);
    assert_eq!(glpi.status, 200);
    let validator = glpi_validator();
    let mut n = 0;
    for line in glpi.body.lines() {
        let doc: Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "document {n}: {errors:#?}");
        n += 1;
    }
    assert_eq!(n, w.specs.len());
    // A passport shows the identity, the verdict and the QR code.
    let fiche = web.get(
        &server.url(&format!("/machines/{inside_id}/fiche")),
        Some(&admin),
        None,
    );
    assert_eq!(fiche.status, 200);
    assert!(fiche.body.contains("Fiche de reconditionnement"));
    assert!(fiche.body.contains("<svg") && fiche.body.contains(&format!("/machines/{inside_id}")));
    assert!(
        fiche.body.contains("nird-base v3"),
        "applied profiles recorded at check-in"
    );
    assert!(
        fiche.body.contains("Écrans externes"),
        "screens on the passport"
    );
    assert!(
        fiche
            .body
            .contains("Processeur jugé d&#39;après la liste Microsoft")
            || fiche
                .body
                .contains("Processeur jugé d'après la liste Microsoft")
            || fiche.body.contains("jugé par estimation"),
        "what judged the processor is on the passport"
    );
    server.stop();

    // --- Changed factors: the CO2e follows the configuration.
    let changed = Co2Factors {
        laptop_manufacture_g: 100_000,
        desktop_manufacture_g: 300_000,
        screen_manufacture_g: 10_000,
        reuse_year_g: 50_000,
        standard_life_years: 5,
    };
    let server = Server::start(&w.f.data, changed);
    let (_, other) = reuse(&web, &server, &w.admin_token, &period);
    let manufacture = laptops * 100.0 + desktops * 300.0;
    assert!((other["co2e"]["manufacture_avoided_kg"].as_f64().unwrap() - manufacture).abs() < 0.11);
    let reuse_kg = other["co2e"]["extended_use_kg"].as_f64().unwrap();
    assert!((reuse_kg - years * 50.0).abs() < 1.1, "{reuse_kg}");
    assert_eq!(other["co2e"]["factors"]["laptop_manufacture_kgco2e"], 100.0);
    assert!(
        (other["co2e"]["screens_manufacture_avoided_kg"]
            .as_f64()
            .unwrap()
            - screens * 10.0)
            .abs()
            < 0.11
    );
    let total = other["co2e"]["total_kg"].as_f64().unwrap();
    assert!(
        (total - (manufacture + screens * 10.0 + reuse_kg)).abs() < 0.3,
        "{total}"
    );
    assert_figures(&other, &want_all, "same counts with other factors");
    server.stop();
}

fn glpi_validator() -> jsonschema::Validator {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reference =
        manifest.join("../../shared/reference/glpi-inventory-format/inventory.schema.json");
    let path = if reference.is_file() {
        reference
    } else {
        manifest.join("../agent/tests/glpi-schema/inventory.schema.json")
    };
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(true)
        .build(&schema)
        .expect("GLPI schema compiles")
}
