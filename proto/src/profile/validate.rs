//! From raw TOML to a validated [`Profile`]: every rule a profile must obey,
//! each broken rule reported with its location and a French sentence saying
//! what to do.

use std::collections::BTreeSet;
use std::ops::Range;

use super::policy::{self, AGENT_NAME, PolicyOptIn};
use super::raw::{self, S};
use super::{
    AptRepository, Audience, BlobRef, DirectoryResource, Enablement, FileContent, FileResource,
    GroupResource, Location, MAX_BLOB_BYTES, MAX_INLINE_CONTENT_BYTES, MAX_PROFILE_BYTES,
    Ownership, PasswordPolicy, Problem, Profile, ProfileError, RunState, Scope, UnitResource,
    UserResource, is_slug, privileged_group,
};
use crate::hash::is_sha256_hex;
use crate::school::{known_academie, normalize_departement};
use crate::uai::Uai;

pub(super) fn parse(file_name: &str, bytes: &[u8]) -> Result<Profile, ProfileError> {
    if bytes.len() > MAX_PROFILE_BYTES {
        return Err(ProfileError::single(
            file_name,
            None,
            format!(
                "le fichier fait {} octets, plus que la limite de {} octets : découpez le profil avec `includes`",
                bytes.len(),
                MAX_PROFILE_BYTES
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        // The valid prefix is UTF-8 by definition.
        let prefix = std::str::from_utf8(valid).unwrap_or_default();
        ProfileError::single(
            file_name,
            Some(Location::of_offset(prefix, prefix.len())),
            "le fichier n'est pas en UTF-8 : enregistrez-le en UTF-8".to_owned(),
        )
    })?;
    let raw: raw::File = toml::from_str(text).map_err(|e| {
        let location = e.span().map(|s| Location::of_offset(text, s.start));
        ProfileError::single(file_name, location, translate_toml_message(e.message()))
    })?;
    let mut checker = Checker {
        text,
        problems: Vec::new(),
        allow: Vec::new(),
    };
    let profile = checker.profile(raw);
    if checker.problems.is_empty() {
        Ok(profile)
    } else {
        Err(ProfileError {
            file: file_name.to_owned(),
            problems: checker.problems,
        })
    }
}

/// The TOML parser speaks English; our readers mostly don't. Translate the
/// shapes of message a maintainer meets most, keep the parser's details.
fn translate_toml_message(msg: &str) -> String {
    crate::toml_fr::french(msg)
}

struct Checker<'a> {
    /// The profile text, to turn spans into line/column.
    text: &'a str,
    /// Everything found so far.
    problems: Vec<Problem>,
    /// The policy rules the profile lifts (read first: later checks ask).
    allow: Vec<PolicyOptIn>,
}

impl Checker<'_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            location: Some(Location::of_offset(self.text, span.start)),
            message: message.into(),
        });
    }

    fn profile(&mut self, raw: raw::File) -> Profile {
        let header = raw.profile.into_inner();
        let name = self.slug(&header.name, "nom de profil");
        let version = match *header.version.get_ref() {
            v if v >= 1 => v as u64,
            v => {
                self.err(
                    header.version.span(),
                    format!("version {v} invalide : la version est un entier ≥ 1, augmenté à chaque publication"),
                );
                0
            }
        };
        let expires = self.date(&header.expires);
        let description = header.description.get_ref().trim().to_owned();
        if description.is_empty() {
            self.err(
                header.description.span(),
                "description vide : dites en une phrase à quoi sert ce profil",
            );
        }
        let audience = self.audience(&header.audience);
        self.allow = self.allow_list(&header.allow);
        let scope = self.scope(&header);
        let mut includes = Vec::new();
        for inc in &header.includes {
            let n = self.slug(inc, "profil inclus");
            if n == name {
                self.err(inc.span(), "un profil ne peut pas s'inclure lui-même");
            } else if includes.contains(&n) {
                self.err(inc.span(), format!("« {n} » est inclus deux fois"));
            } else {
                includes.push(n);
            }
        }

        let (packages_install, packages_remove) = self.packages(raw.packages);
        let mut paths = Dedup::new("chemin");
        let mut repo_names = Dedup::new("dépôt APT");
        let mut repositories = Vec::new();
        for r in &raw.repository {
            let repository = self.repository(r.get_ref());
            repo_names.check(self, &repository.name, r.get_ref().name.span());
            repositories.push(repository);
        }
        let mut files = Vec::new();
        for f in &raw.file {
            if let Some(file) = self.file(f) {
                paths.check(self, &file.path, f.get_ref().path.span());
                files.push(file);
            }
        }
        let mut directories = Vec::new();
        for d in &raw.directory {
            let d = d.get_ref();
            let path = self.path(&d.path);
            let ownership = self.ownership(&d.mode, &d.owner, &d.group, 0o755);
            self.directory_policy(d, &path, &ownership);
            paths.check(self, &path, d.path.span());
            directories.push(DirectoryResource { path, ownership });
        }
        let mut unit_names = Dedup::new("unité systemd");
        let mut units = Vec::new();
        for u in &raw.unit {
            if let Some(unit) = self.unit(u) {
                unit_names.check(self, &unit.name, u.get_ref().name.span());
                units.push(unit);
            }
        }
        let mut group_names = Dedup::new("groupe");
        let mut groups = Vec::new();
        for g in &raw.group {
            let g = g.get_ref();
            let name = self.account_name(&g.name, "groupe");
            if name == "root" {
                self.err(
                    g.name.span(),
                    "le groupe root appartient au système : un profil ne peut pas le gérer",
                );
            }
            group_names.check(self, &name, g.name.span());
            let gid = g.gid.as_ref().map(|id| self.id(id, "gid"));
            if let Some(id) = g.gid.as_ref().filter(|id| *id.get_ref() == 0) {
                let span = id.span();
                self.err(
                    span,
                    "gid 0 est celui du groupe root : un profil ne peut pas le donner",
                );
            }
            groups.push(GroupResource {
                name,
                gid,
                system: g.system,
            });
        }
        let mut user_names = Dedup::new("compte");
        let mut users = Vec::new();
        for u in &raw.user {
            let user = self.user(u.get_ref());
            user_names.check(self, &user.name, u.get_ref().name.span());
            users.push(user);
        }

        Profile {
            name,
            version,
            expires,
            description,
            audience,
            scope,
            allow: self.allow.clone(),
            includes,
            packages_install,
            packages_remove,
            repositories,
            files,
            directories,
            units,
            groups,
            users,
        }
    }

    fn audience(&mut self, a: &S<raw::OneOrMany>) -> Vec<Audience> {
        let words: Vec<&str> = match a.get_ref() {
            raw::OneOrMany::One(w) => vec![w.as_str()],
            raw::OneOrMany::Many(ws) => ws.iter().map(String::as_str).collect(),
        };
        let mut out = Vec::new();
        for w in &words {
            match Audience::parse(w) {
                Some(aud) if !out.contains(&aud) => out.push(aud),
                Some(_) => self.err(a.span(), format!("public « {w} » répété")),
                None => self.err(
                    a.span(),
                    format!("public « {w} » inconnu : utilisez « école », « collège », « lycée » ou « all »"),
                ),
            }
        }
        if words.is_empty() {
            self.err(
                a.span(),
                "public vide : au moins un de « école », « collège », « lycée », « all »",
            );
        }
        out
    }

    /// `allow = ["setuid", ...]`: known words, no repeats; sorted.
    fn allow_list(&mut self, words: &[S<String>]) -> Vec<PolicyOptIn> {
        let mut out = Vec::new();
        for w in words {
            match PolicyOptIn::parse(w.get_ref()) {
                Some(o) if out.contains(&o) => {
                    self.err(w.span(), format!("« {} » répété dans allow", o.as_str()))
                }
                Some(o) => out.push(o),
                None => {
                    let known: Vec<&str> = PolicyOptIn::ALL.iter().map(|o| o.as_str()).collect();
                    self.err(
                        w.span(),
                        format!(
                            "« {} » inconnu dans allow : les valeurs possibles sont {}",
                            w.get_ref(),
                            known.join(", ")
                        ),
                    )
                }
            }
        }
        out.sort();
        out
    }

    /// `academies`, `departements`, `uais`: each a known name or a valid
    /// code, no repeats.
    fn scope(&mut self, header: &raw::Header) -> Scope {
        let mut scope = Scope::default();
        for a in &header.academies {
            match known_academie(a.get_ref()) {
                Some(name) if scope.academies.iter().any(|x| x == name) => {
                    self.err(a.span(), format!("académie « {name} » répétée"))
                }
                Some(name) => scope.academies.push(name.to_owned()),
                None => self.err(
                    a.span(),
                    format!(
                        "académie « {} » inconnue : écrivez son nom, ex. « Lille », « Aix-Marseille », « Normandie »",
                        a.get_ref()
                    ),
                ),
            }
        }
        for d in &header.departements {
            match normalize_departement(d.get_ref()) {
                Some(code) if scope.departements.contains(&code) => {
                    self.err(d.span(), format!("département « {code} » répété"))
                }
                Some(code) => scope.departements.push(code),
                None => self.err(
                    d.span(),
                    format!(
                        "département « {} » invalide : son numéro, ex. « 62 », « 062 », « 2A » ou « 971 »",
                        d.get_ref()
                    ),
                ),
            }
        }
        for u in &header.uais {
            match Uai::parse(u.get_ref()) {
                Ok(uai) if scope.uais.contains(&uai) => {
                    self.err(u.span(), format!("établissement « {uai} » répété"))
                }
                Ok(uai) => scope.uais.push(uai),
                Err(e) => self.err(u.span(), e.to_string()),
            }
        }
        scope
    }

    fn allows(&self, opt: PolicyOptIn) -> bool {
        self.allow.contains(&opt)
    }

    /// Setuid on a directory needs `allow = ["setuid"]`; a directory that
    /// guards the agent's paths must stay root's alone.
    fn directory_policy(&mut self, d: &raw::Directory, path: &str, ownership: &Ownership) {
        let mode_span = d.mode.as_ref().map_or(d.path.span(), |m| m.span());
        // Setgid on a directory only makes new files inherit its group (the
        // shared class folder, mode 2775): no privilege, allowed. Setuid on a
        // directory has no meaning on Linux: only a mistake or a probe.
        if ownership.mode & 0o4000 != 0 && !self.allows(PolicyOptIn::Setuid) {
            self.err(
                mode_span,
                format!(
                    "mode {:04o} : le bit setuid sur un dossier est refusé ; s'il est voulu, ajoutez allow = [\"setuid\"] dans [profile]",
                    ownership.mode
                ),
            );
        }
        if policy::guards_agent_paths(&policy::canonical_path(path))
            && (ownership.owner != "root"
                || ownership.group != "root"
                || ownership.mode & 0o022 != 0)
        {
            self.err(
                d.path.span(),
                format!(
                    "le dossier « {path} » contient les fichiers de nird-agent : il ne peut être géré qu'en root:root, sans droit d'écriture pour le groupe ni les autres"
                ),
            );
        }
    }

    fn slug(&mut self, s: &S<String>, what: &str) -> String {
        let v = s.get_ref();
        if !is_slug(v) {
            self.err(
                s.span(),
                format!(
                    "{what} « {v} » invalide : lettres minuscules, chiffres et tirets seulement (ex. « primtux »), 64 caractères au plus"
                ),
            );
        }
        v.clone()
    }

    fn date(&mut self, d: &S<toml::value::Datetime>) -> time::Date {
        let dt = d.get_ref();
        let parsed = match (dt.date, dt.time) {
            (Some(date), None) => time::Month::try_from(date.month).ok().and_then(|m| {
                time::Date::from_calendar_date(i32::from(date.year), m, date.day).ok()
            }),
            _ => None,
        };
        parsed.unwrap_or_else(|| {
            self.err(
                d.span(),
                format!("date d'expiration « {dt} » invalide : écrivez une date seule, sans guillemets, ex. expires = 2027-08-31"),
            );
            time::Date::MIN
        })
    }

    fn packages(&mut self, raw: Option<S<raw::Packages>>) -> (Vec<String>, Vec<String>) {
        let Some(raw) = raw else {
            return (Vec::new(), Vec::new());
        };
        let raw = raw.into_inner();
        let mut seen = Dedup::new("paquet");
        let mut install = Vec::new();
        for p in &raw.install {
            let name = self.package_name(p, true);
            if seen.check(self, &name, p.span()) {
                install.push(name);
            }
        }
        let mut remove = Vec::new();
        for p in &raw.remove {
            let name = self.package_name(p, false);
            if name == AGENT_NAME {
                self.err(
                    p.span(),
                    "retirer nird-agent couperait la machine du parc : un profil peut l'installer (mise à jour), jamais le retirer",
                );
            } else if install.contains(&name) {
                self.err(
                    p.span(),
                    format!(
                        "le paquet « {name} » est à la fois à installer et à retirer : choisissez"
                    ),
                );
            } else if seen.check(self, &name, p.span()) {
                remove.push(name);
            }
        }
        (install, remove)
    }

    /// Debian policy §5.6.7: lowercase letters, digits, `+ - .`; at least two
    /// characters; starts with a letter or digit. A package to install may
    /// pin a version, `name=version` (§5.6.12: starts with a digit; letters,
    /// digits, `. + ~ : -`): the signed profile then says exactly which
    /// build machines run — how a new `nird-agent` is rolled out.
    fn package_name(&mut self, p: &S<String>, allow_version: bool) -> String {
        let spec = p.get_ref();
        let (n, version) = match spec.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (spec.as_str(), None),
        };
        let ok = n.len() >= 2
            && n.len() <= 128
            && n.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && n.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
            });
        // apt-get reads a final « - » as « remove » and a final « + » as
        // « install » when no package has the name as written:
        // `install = ["nird-agent-"]` would remove the agent. No real
        // package ends in « - »; « g++ » may be installed, not listed to
        // remove (it would read as « install »).
        let action = if n.ends_with('-') {
            Some("désinstaller")
        } else if n.ends_with('+') && !allow_version {
            Some("installer")
        } else {
            None
        };
        if let (true, Some(action)) = (ok, action) {
            self.err(
                p.span(),
                format!(
                    "nom de paquet « {n} » refusé : apt lirait son dernier caractère comme « {action} » \
                     si aucun paquet ne porte exactement ce nom"
                ),
            );
        } else if !ok {
            let msg = if n.trim().is_empty() {
                "nom de paquet vide : retirez l'entrée ou écrivez le nom du paquet Debian"
                    .to_owned()
            } else {
                format!(
                    "nom de paquet « {n} » invalide : un nom Debian est en minuscules (lettres, chiffres, + - .), ex. « gcompris-qt »"
                )
            };
            self.err(p.span(), msg);
        } else if let Some(v) = version {
            let version_ok = !v.is_empty()
                && v.len() <= 128
                && v.bytes().next().is_some_and(|b| b.is_ascii_digit())
                && v.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~' | b':' | b'-')
                });
            if !allow_version {
                self.err(
                    p.span(),
                    format!("« {spec} » : une version ne se donne qu'à un paquet à installer"),
                );
            } else if !version_ok {
                self.err(
                    p.span(),
                    format!(
                        "version « {v} » invalide pour « {n} » : une version Debian commence par un chiffre, ex. « {n}=0.2.0-1 »"
                    ),
                );
            }
        }
        spec.clone()
    }

    /// An absolute, normalised path that the policy lets a profile manage
    /// (checked in its canonical form: `/var/run/x` is `/run/x`).
    fn path(&mut self, p: &S<String>) -> String {
        let v = p.get_ref();
        if let Some(msg) = path_problem(v) {
            self.err(p.span(), format!("chemin « {v} » refusé : {msg}"));
            return v.clone();
        }
        let canonical = policy::canonical_path(v);
        let shown = if canonical == *v {
            String::new()
        } else {
            format!(" (c'est-à-dire « {canonical} »)")
        };
        if let Some(msg) = policy::forbidden_path(&canonical) {
            self.err(p.span(), format!("chemin « {v} »{shown} refusé : {msg}"));
        } else if policy::is_runtime_path(&canonical) && !self.allows(PolicyOptIn::RuntimePaths) {
            self.err(
                p.span(),
                format!(
                    "chemin « {v} »{shown} refusé : /run est effacé à chaque démarrage ; s'il est voulu, ajoutez allow = [\"runtime-paths\"] dans [profile]"
                ),
            );
        }
        v.clone()
    }

    fn blob(&mut self, b: &S<raw::Blob>) -> BlobRef {
        let b = b.get_ref();
        let sha256 = b.sha256.get_ref().to_ascii_lowercase();
        if !is_sha256_hex(&sha256) {
            self.err(
                b.sha256.span(),
                "sha256 invalide : 64 chiffres hexadécimaux, comme l'affiche `sha256sum FICHIER`",
            );
        }
        let size = *b.size.get_ref();
        if size < 0 || size as u64 > MAX_BLOB_BYTES {
            self.err(
                b.size.span(),
                format!("taille {size} invalide : entre 0 et {MAX_BLOB_BYTES} octets"),
            );
        }
        let source = b.source.as_ref().map(|s| {
            let v = s.get_ref();
            let relative_ok = !v.is_empty()
                && !v.starts_with('/')
                && !v.split('/').any(|c| c == ".." || c.is_empty())
                && !v.contains('\0');
            if !relative_ok {
                self.err(
                    s.span(),
                    format!("source « {v} » invalide : un chemin relatif au fichier du profil, sans « .. »"),
                );
            }
            v.clone()
        });
        BlobRef {
            sha256,
            size: size.max(0) as u64,
            source,
        }
    }

    fn repository(&mut self, r: &raw::Repository) -> AptRepository {
        let name = self.slug(&r.name, "nom de dépôt");
        if r.uris.is_empty() {
            self.err(
                r.name.span(),
                "dépôt sans `uris` : donnez au moins une adresse http(s)://",
            );
        }
        for u in &r.uris {
            let v = u.get_ref();
            let ok = (v.starts_with("https://") || v.starts_with("http://"))
                && v.len() > "https://".len()
                && !v.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                self.err(u.span(), format!("adresse de dépôt « {v} » invalide : http:// ou https:// suivi de l'hôte, sans espace"));
            }
        }
        if r.suites.is_empty() {
            self.err(
                r.name.span(),
                "dépôt sans `suites` : indiquez par ex. suites = [\"bookworm\"]",
            );
        }
        for s in r.suites.iter().chain(&r.components) {
            let v = s.get_ref();
            let ok = !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
            if !ok {
                self.err(
                    s.span(),
                    format!(
                        "suite ou composant « {v} » invalide : lettres, chiffres, - _ . / seulement"
                    ),
                );
            }
        }
        let key = self.blob(&r.key);
        AptRepository {
            name,
            uris: r.uris.iter().map(|u| u.get_ref().clone()).collect(),
            suites: r.suites.iter().map(|u| u.get_ref().clone()).collect(),
            components: r.components.iter().map(|u| u.get_ref().clone()).collect(),
            key,
        }
    }

    fn file(&mut self, f: &S<raw::FileEntry>) -> Option<FileResource> {
        let span = f.span();
        let f = f.get_ref();
        let path = self.path(&f.path);
        let ownership = self.ownership(&f.mode, &f.owner, &f.group, 0o644);
        if ownership.mode & 0o6000 != 0 && !self.allows(PolicyOptIn::Setuid) {
            let span = f.mode.as_ref().map_or(f.path.span(), |m| m.span());
            self.err(
                span,
                format!(
                    "mode {:04o} : les bits setuid/setgid font exécuter ce fichier avec les droits de son propriétaire ; s'ils sont voulus, ajoutez allow = [\"setuid\"] dans [profile]",
                    ownership.mode
                ),
            );
        }
        if policy::is_ancestor_of_agent_paths(&policy::canonical_path(&path)) {
            self.err(
                f.path.span(),
                format!("chemin « {path} » refusé : c'est un dossier qui contient les fichiers de nird-agent, pas un fichier"),
            );
        }
        let content = match (&f.content, &f.blob) {
            (Some(c), None) => {
                if c.get_ref().len() > MAX_INLINE_CONTENT_BYTES {
                    self.err(
                        c.span(),
                        format!("contenu de {} octets : au-delà de {MAX_INLINE_CONTENT_BYTES} octets, utilisez `blob` (sha256 + size)", c.get_ref().len()),
                    );
                }
                FileContent::Inline(c.get_ref().clone())
            }
            (None, Some(b)) => FileContent::Blob(self.blob(b)),
            (Some(_), Some(_)) => {
                self.err(
                    span,
                    "un fichier a soit `content`, soit `blob`, pas les deux",
                );
                return None;
            }
            (None, None) => {
                self.err(span, "fichier sans contenu : ajoutez `content = \"...\"` ou `blob = { sha256 = \"...\", size = N }`");
                return None;
            }
        };
        Some(FileResource {
            path,
            content,
            ownership,
        })
    }

    fn ownership(
        &mut self,
        mode: &Option<S<String>>,
        owner: &Option<S<String>>,
        group: &Option<S<String>>,
        default_mode: u32,
    ) -> Ownership {
        let mode = match mode {
            None => default_mode,
            Some(m) => {
                let v = m.get_ref();
                let digits = v.strip_prefix("0o").unwrap_or(v);
                match u32::from_str_radix(digits, 8) {
                    Ok(n) if (3..=4).contains(&digits.len()) && n <= 0o7777 => n,
                    _ => {
                        self.err(m.span(), format!("mode « {v} » invalide : 3 ou 4 chiffres octaux entre guillemets, ex. mode = \"0644\""));
                        default_mode
                    }
                }
            }
        };
        let owner = owner.as_ref().map_or_else(
            || "root".to_owned(),
            |o| self.account_name(o, "propriétaire"),
        );
        let group = group
            .as_ref()
            .map_or_else(|| "root".to_owned(), |g| self.account_name(g, "groupe"));
        Ownership { mode, owner, group }
    }

    /// Login and group names as Debian's `adduser` accepts them once
    /// NAME_REGEX is relaxed for PrimTux's `01-mini`: lowercase letters,
    /// digits, `_` and `-`, not all digits (that would read as an id).
    fn account_name(&mut self, n: &S<String>, what: &str) -> String {
        let v = n.get_ref();
        let ok = !v.is_empty()
            && v.len() <= 32
            && !v.starts_with('-')
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
            && !v.bytes().all(|b| b.is_ascii_digit());
        if !ok {
            self.err(
                n.span(),
                format!("nom de {what} « {v} » invalide : minuscules, chiffres, _ et -, 32 caractères au plus, pas uniquement des chiffres"),
            );
        }
        v.clone()
    }

    fn id(&mut self, id: &S<i64>, what: &str) -> u32 {
        match u32::try_from(*id.get_ref()) {
            Ok(n) if n < 65_534 => n,
            _ => {
                self.err(
                    id.span(),
                    format!("{what} {} invalide : entre 0 et 65533", id.get_ref()),
                );
                0
            }
        }
    }

    fn unit(&mut self, u: &S<raw::Unit>) -> Option<UnitResource> {
        let span = u.span();
        let u = u.get_ref();
        let name = u.name.get_ref().clone();
        const SUFFIXES: [&str; 7] = [
            ".service",
            ".socket",
            ".timer",
            ".target",
            ".path",
            ".mount",
            ".automount",
        ];
        let stem = SUFFIXES.iter().find_map(|s| name.strip_suffix(s));
        let ok = stem.is_some_and(|stem| {
            !stem.is_empty()
                && stem.len() <= 200
                && stem.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b':' | b'_' | b'.' | b'@' | b'-' | b'\\')
                })
        });
        if !ok {
            self.err(u.name.span(), format!("unité « {name} » invalide : nom complet avec son suffixe, ex. « ssh.service » ou « apt-daily.timer »"));
        } else if policy::is_agent_unit_name(&name) {
            self.err(
                u.name.span(),
                format!("unité « {name} » refusée : le service de nird-agent n'est jamais géré par un profil"),
            );
        } else if policy::SYSTEM_STATE_UNITS.contains(&name.as_str()) {
            // `reboot.target` « running » reboots at every window (it looks
            // inactive again after each boot); stopping `sysinit.target`
            // stops the agent through Requires= (found by review).
            self.err(
                u.name.span(),
                format!("unité « {name} » refusée : elle change l'état de toute la machine (arrêt, redémarrage, mode de secours), jamais un profil"),
            );
        }
        let enablement = u.enablement.as_ref().and_then(|e| match e.get_ref().as_str() {
            "enabled" => Some(Enablement::Enabled),
            "disabled" => Some(Enablement::Disabled),
            "masked" => Some(Enablement::Masked),
            other => {
                self.err(e.span(), format!("enablement « {other} » inconnu : « enabled », « disabled » ou « masked »"));
                None
            }
        });
        let state = u.state.as_ref().and_then(|s| match s.get_ref().as_str() {
            "running" => Some(RunState::Running),
            "stopped" => Some(RunState::Stopped),
            other => {
                self.err(
                    s.span(),
                    format!("state « {other} » inconnu : « running » ou « stopped »"),
                );
                None
            }
        });
        if u.enablement.is_none() && u.state.is_none() {
            self.err(span, "unité sans effet : donnez `enablement` et/ou `state`");
            return None;
        }
        if enablement == Some(Enablement::Masked) && state == Some(RunState::Running) {
            self.err(span, "une unité masquée ne peut pas être démarrée : state = \"stopped\" ou retirez `state`");
        }
        Some(UnitResource {
            name,
            enablement,
            state,
        })
    }

    fn user(&mut self, u: &raw::User) -> UserResource {
        let name = self.account_name(&u.name, "compte");
        if name == "root" {
            self.err(
                u.name.span(),
                "le compte root appartient au système : un profil ne peut pas le gérer",
            );
        }
        let uid = u.uid.as_ref().map(|id| self.id(id, "uid"));
        if let Some(id) = u.uid.as_ref().filter(|id| *id.get_ref() == 0) {
            let span = id.span();
            self.err(
                span,
                "uid 0 est celui de root : un profil ne peut pas le donner",
            );
        }
        let mut groups: Vec<String> = Vec::new();
        for g in &u.groups {
            let g_name = self.account_name(g, "groupe");
            if groups.contains(&g_name) {
                self.err(g.span(), format!("groupe « {g_name} » listé deux fois"));
            } else {
                groups.push(g_name);
            }
        }
        let shell = u
            .shell
            .as_ref()
            .map_or_else(|| "/bin/bash".to_owned(), |s| self.path(s));
        let home = u
            .home
            .as_ref()
            .map_or_else(|| format!("/home/{name}"), |h| self.path(h));
        // A home at or under the agent's paths is refused by `path`. An
        // existing ancestor of them is harmless (Debian's `daemon` lives in
        // /usr/sbin): the engine creates a home only when it is missing and
        // gives the user only that new directory.
        let password = match u.password.as_ref() {
            None => PasswordPolicy::Locked,
            Some(p) => match p.get_ref().as_str() {
                "locked" => PasswordPolicy::Locked,
                "empty" => PasswordPolicy::Empty,
                "unmanaged" => PasswordPolicy::Unmanaged,
                other => {
                    self.err(p.span(), format!("password « {other} » inconnu : « locked », « empty » ou « unmanaged » (jamais de mot de passe en clair dans un profil)"));
                    PasswordPolicy::Locked
                }
            },
        };
        let full_name = u.full_name.as_ref().map(|f| {
            let v = f.get_ref();
            if v.contains([':', ',', '\n', '\0']) {
                self.err(
                    f.span(),
                    "nom complet invalide : sans « : », « , » ni retour à la ligne",
                );
            }
            v.clone()
        });
        let user = UserResource {
            name,
            full_name,
            uid,
            groups,
            shell,
            home,
            password,
            system: u.system,
        };
        if user.password == PasswordPolicy::Empty
            && let Some(group) = privileged_group(&user)
            && !self.allows(PolicyOptIn::EmptyAdminPassword)
        {
            let span = u.password.as_ref().map_or(u.name.span(), |p| p.span());
            self.err(
                span,
                format!(
                    "le compte « {} » est dans le groupe privilégié « {group} » : un mot de passe vide en ferait un administrateur pour quiconque est au clavier ; mettez password = \"locked\" ou \"unmanaged\", ou, si c'est voulu, allow = [\"empty-admin-password\"] dans [profile]",
                    user.name
                ),
            );
        }
        user
    }
}

/// Why a path is malformed, or `None` if it is fine: absolute, normalised
/// (no `.`/`..`/empty components, no trailing slash), not the root itself.
/// What may be managed is then decided on its canonical form
/// ([`policy::forbidden_path`], [`policy::is_runtime_path`]).
/// Longest path a profile may manage, in characters.
pub const MAX_PATH_CHARS: usize = 1_000;

pub(crate) fn path_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some("un chemin doit être absolu (commencer par /)");
    }
    if p == "/" {
        return Some("la racine elle-même ne peut pas être gérée");
    }
    // A resource id (`file:PATH`, `dir:PATH`) travels in reports, which
    // the server takes up to 1,024 characters: a longer path could be
    // signed and applied but never reported (found by review).
    if p.chars().count() > MAX_PATH_CHARS || p.contains('\0') || p.contains('\n') {
        return Some("chemin trop long (1 000 caractères au plus) ou avec un caractère interdit");
    }
    if p[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("pas de « .. », de « . », de « // » ni de / final");
    }
    None
}

/// Reports the second and later occurrences of a name.
struct Dedup {
    what: &'static str,
    seen: BTreeSet<String>,
}

impl Dedup {
    fn new(what: &'static str) -> Self {
        Dedup {
            what,
            seen: BTreeSet::new(),
        }
    }

    /// True the first time `name` is seen; reports a problem afterwards.
    fn check(&mut self, checker: &mut Checker<'_>, name: &str, span: Range<usize>) -> bool {
        if !self.seen.insert(name.to_owned()) {
            checker.err(
                span,
                format!(
                    "{} « {name} » déclaré deux fois : gardez une seule déclaration",
                    self.what
                ),
            );
            false
        } else {
            true
        }
    }
}
