//! The agent upgrades itself through its own signed profile, in the
//! throwaway Debian chroot (`agent/tests/support/chroot.rs`):
//!
//! 1. `apt-get install ./nird-agent_*.deb`, `nird-agent enroll --kit`,
//!    `nird-agent run --once` — the time from the first command to a
//!    checked-in machine is printed (BENCHMARKS.md);
//! 2. `packaging/build-repo` makes a signed APT repository of three
//!    versions of the agent (the built one, a newer one, and a broken
//!    newest one whose preinst fails), served over HTTP from 127.0.0.1;
//! 3. a signed profile pins that repository and its key and asks for
//!    `nird-agent=0.1.0-2`: the running daemon (inside the chroot, as on a
//!    PC) installs it, reports the apply, and re-executes its new binary
//!    (same PID, `/proc/PID/exe` no longer deleted);
//! 4. the next release asks for the broken `0.1.0-3`: the apply fails and
//!    is reported, the installed version stays `0.1.0-2`, and the same
//!    agent process keeps running and checking in.
//!
//! Skipped with a clear message without root, debootstrap, a mirror,
//! cargo-deb, apt-ftparchive or gpg.

#[path = "../../agent/tests/support/chroot.rs"]
mod chroot;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nird_tests::*;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn in_root(root: &Path, script: &str) -> Output {
    Command::new("chroot")
        .arg(root)
        .args(["sh", "-c", script])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap()
}

fn in_root_ok(root: &Path, script: &str) -> String {
    let out = in_root(root, script);
    assert!(
        out.status.success(),
        "in chroot: {script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The agent package built by `packaging/build-debs` (dev profile).
fn build_agent_deb(out_dir: &Path) -> Result<PathBuf, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let _ = std::fs::remove_dir_all(out_dir);
    let out = Command::new(repo.join("packaging/build-debs"))
        .arg(out_dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("NIRD_DEB_PROFILE", "dev")
        .env("NIRD_DEB_NO_BUILD", "1")
        .output()
        .map_err(|e| format!("cannot run packaging/build-debs: {e}"))?;
    if out.status.code() == Some(77) {
        return Err("cargo-deb is missing and cannot be installed".into());
    }
    assert!(
        out.status.success(),
        "packaging/build-debs failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let agent = PathBuf::from(stdout.lines().last().unwrap_or_default());
    assert!(agent.is_file(), "build-debs printed:\n{stdout}");
    Ok(agent)
}

/// `deb` rebuilt as `version`; `broken`: its preinst fails, so dpkg
/// refuses it before unpacking anything.
fn repack(deb: &Path, version: &str, broken: bool, out_dir: &Path) -> PathBuf {
    let tree = out_dir.join(format!("tree-{version}"));
    let _ = std::fs::remove_dir_all(&tree);
    let ok = |c: &mut Command| {
        let o = c.output().unwrap();
        assert!(
            o.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    ok(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("Version: ") {
                format!("Version: {version}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&control, text).unwrap();
    if broken {
        let preinst = tree.join("DEBIAN/preinst");
        std::fs::write(
            &preinst,
            "#!/bin/sh\necho 'nird-agent: paquet volontairement cassé' >&2\nexit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&preinst, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = out_dir.join(format!("nird-agent_{version}_amd64.deb"));
    ok(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "-b"])
        .arg(&tree)
        .arg(&out));
    let _ = std::fs::remove_dir_all(&tree);
    out
}

/// A static HTTP server for `dir` on 127.0.0.1 (what any web server does
/// for the repository); returns its port.
fn serve_dir(dir: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let file = dir.join(path.trim_start_matches('/'));
                let body = (!path.contains(".."))
                    .then(|| std::fs::read(&file).ok())
                    .flatten();
                let head_only = request.starts_with("HEAD ");
                let reply = match &body {
                    Some(b) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    ),
                    None => {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_owned()
                    }
                };
                let _ = stream.write_all(reply.as_bytes());
                if let (Some(b), false) = (body, head_only) {
                    let _ = stream.write_all(&b);
                }
            });
        }
    });
    port
}

/// Undoes everything the test did to the shared chroot, whatever happens.
struct Cleanup {
    root: PathBuf,
    agent: Option<Child>,
}

/// Puts the shared chroot back as it was: agent purged, its state and the
/// repository it was given removed, /proc unmounted.
fn reset(root: &Path) {
    let _ = in_root(
        root,
        "dpkg --purge nird-agent; rm -rf /etc/nird /var/lib/nird-agent \
         /etc/apt/sources.list.d/nird-fleet.sources /etc/apt/keyrings/nird-fleet.* \
         /tmp/nird-kit.toml /tmp/nird-debs",
    );
    let _ = Command::new("umount")
        .arg("-l")
        .arg(root.join("proc"))
        .status();
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        reset(&self.root);
    }
}

fn server_with_interval(data: &ServerData) -> (Child, String) {
    let port = free_port();
    let log = std::fs::File::create(data.tmp.path().join("serve.log")).unwrap();
    let child = Command::new(bin("nird-server"))
        .args([
            "serve",
            "--data-dir",
            s(&data.data),
            "--checkin-interval",
            "10",
        ])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server not listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, format!("https://127.0.0.1:{port}"))
}

/// Polls `f` every 200 ms for up to `secs` seconds.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn profile(version: u64, agent_version: &str, repo_port: u16, key: &[u8]) -> String {
    format!(
        "[profile]\nname = \"nird-maj\"\nversion = {version}\nexpires = {}\n\
         description = \"Mise à jour de nird-agent depuis le dépôt du projet\"\naudience = \"all\"\n\n\
         [packages]\ninstall = [\"nird-agent={agent_version}\"]\n\n\
         [[repository]]\nname = \"nird-fleet\"\nuris = [\"http://127.0.0.1:{repo_port}\"]\n\
         suites = [\"stable\"]\ncomponents = [\"main\"]\n\
         key = {{ sha256 = \"{}\", size = {}, source = \"nird-fleet-archive.asc\" }}\n",
        in_a_year(),
        nird_proto::hash::sha256_hex(key),
        key.len()
    )
}

#[test]
fn the_agent_upgrades_itself_through_a_signed_profile_and_survives_a_broken_package() {
    let (root, _lock) = match chroot::debian_chroot() {
        Ok(r) => r,
        Err(why) => {
            eprintln!("SKIPPED: self-update chroot test: {why}");
            return;
        }
    };
    for tool in ["apt-ftparchive", "gpg"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("SKIPPED: self-update chroot test: {tool} missing (scripts/install-deps.sh)");
            return;
        }
    }
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nird-self-update");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let v1 = match build_agent_deb(&work.join("debs")) {
        Ok(d) => d,
        Err(why) => {
            eprintln!("SKIPPED: self-update chroot test: {why}");
            return;
        }
    };
    // A clean start on the reused chroot; /proc for the agent's own
    // executable (how it notices it was replaced).
    reset(&root);
    let mut cleanup = Cleanup {
        root: root.clone(),
        agent: None,
    };
    let mounted = Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(root.join("proc"))
        .status()
        .unwrap();
    assert!(mounted.success(), "cannot mount /proc in the chroot");

    // The server (check-ins every 10 s) and a kit for the school.
    let data = ServerData::new();
    let (mut server, url) = server_with_interval(&data);
    let kit = work.join("kit.toml");
    data.cli(&[
        "kit",
        "create",
        "--school",
        UAI,
        "--server",
        &url,
        "--out",
        s(&kit),
    ]);

    // 1. apt-get install ./nird-agent_*.deb → enrolled and checked in.
    let debs = root.join("tmp/nird-debs");
    std::fs::create_dir_all(&debs).unwrap();
    let name = v1.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::copy(&v1, debs.join(&name)).unwrap();
    std::fs::copy(&kit, root.join("tmp/nird-kit.toml")).unwrap();
    let started = Instant::now();
    in_root_ok(
        &root,
        &format!("cd /tmp/nird-debs && apt-get install -y -qq --no-install-recommends ./{name}"),
    );
    let installed = started.elapsed();
    let enrolled = in_root_ok(&root, "nird-agent enroll --kit /tmp/nird-kit.toml");
    assert!(enrolled.contains("Machine enrôlée"), "{enrolled}");
    in_root_ok(&root, "nird-agent run --once");
    let checked_in = started.elapsed();
    eprintln!(
        "BENCH apt-get install ./nird-agent_*.deb: {:.1} s; to an enrolled, checked-in machine with a kit: {:.1} s",
        installed.as_secs_f64(),
        checked_in.as_secs_f64()
    );
    let machines = data.cli(&["machine", "list"]);
    let machine = machines
        .lines()
        .next()
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    let seen = |m: &str| {
        m.lines()
            .find(|l| l.starts_with(&machine))
            .and_then(|l| l.split('\t').find(|f| f.ends_with(" check-ins")))
            .and_then(|f| f.trim_end_matches(" check-ins").parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(seen(&machines) >= 1, "{machines}");

    // 2. The signed repository: 0.1.0-1 (installed), 0.1.0-2, broken 0.1.0-3.
    let v2 = repack(&v1, "0.1.0-2", false, &work);
    let v3 = repack(&v1, "0.1.0-3", true, &work);
    let repo = work.join("repo");
    let built = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/build-repo"))
        .arg(&repo)
        .args([&v1, &v2, &v3])
        .env("NIRD_REPO_GNUPGHOME", work.join("gnupg"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "build-repo: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(repo.join("dists/stable/InRelease").is_file());
    let key = std::fs::read(repo.join("nird-fleet-archive.asc")).unwrap();
    let repo_port = serve_dir(repo.clone());

    // 3. The profile that pins it, signed and published, and the daemon.
    let profiles = data.tmp.path().join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(profiles.join("nird-fleet-archive.asc"), &key).unwrap();
    data.publish("nird-maj", &profile(1, "0.1.0-2", repo_port, &key));
    data.assign(&["nird-maj"]);
    let log_path = work.join("agent.log");
    let agent = Command::new("chroot")
        .arg(&root)
        .args(["nird-agent", "run"])
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("NIRD_LOG", "info")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let pid = agent.id();
    cleanup.agent = Some(agent);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let reports = |outcome: &str| {
        data.reports(&machine)
            .iter()
            .filter(|r| r["profile"] == "nird-maj" && r["outcome"] == outcome)
            .count()
    };
    wait_for(300, "the upgrade's report", || reports("applied") >= 1);
    let version = in_root_ok(&root, "dpkg-query -W -f='${Version}' nird-agent");
    assert_eq!(version, "0.1.0-2");
    wait_for(60, "the re-execution", || {
        log().contains("re-executing the upgraded agent")
    });
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        !exe.to_string_lossy().contains("(deleted)"),
        "the old binary still runs: {}",
        exe.display()
    );
    assert!(
        cleanup
            .agent
            .as_mut()
            .unwrap()
            .try_wait()
            .unwrap()
            .is_none(),
        "the agent exited:\n{}",
        log()
    );

    // 4. A broken newer package: reported, the old agent keeps running.
    data.publish("nird-maj", &profile(2, "0.1.0-3", repo_port, &key));
    wait_for(300, "the failed upgrade's report", || {
        reports("failed") >= 1
    });
    let failed = data
        .reports(&machine)
        .into_iter()
        .rfind(|r| r["outcome"] == "failed")
        .unwrap();
    let text = failed.to_string();
    assert!(text.contains("nird-agent"), "{text}");
    let version = in_root_ok(&root, "dpkg-query -W -f='${Version}' nird-agent");
    assert_eq!(version, "0.1.0-2", "the broken package replaced the agent");
    let before = seen(&data.cli(&["machine", "list"]));
    // The next heartbeat comes within the interval plus the packaged
    // agent's default jitter (10 s + up to 60 s): waiting only 60 s failed
    // when the jitter drew more than 50 s.
    wait_for(100, "a check-in after the failed upgrade", || {
        seen(&data.cli(&["machine", "list"])) > before
    });
    assert!(
        cleanup
            .agent
            .as_mut()
            .unwrap()
            .try_wait()
            .unwrap()
            .is_none(),
        "the agent exited after the broken package:\n{}",
        log()
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        exe,
        "the agent process changed"
    );
    drop(cleanup);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&work);
}
