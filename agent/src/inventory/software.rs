//! Installed software: the dpkg list (read by [`super::os`] in the same pass
//! as the package count) and system-wide Flatpak applications.

use nird_proto::inventory::{FlatpakApp, Package, Reading, Software};

use super::source::Source;

/// Where `flatpak --system` deploys applications.
const FLATPAK_APPS: &str = "/var/lib/flatpak/app";

/// Largest AppStream file read for a version (real ones are a few KB).
const MAX_METAINFO_BYTES: u64 = 256 * 1024;

/// The software section from the dpkg list and the Flatpak directory.
pub fn collect(source: &Source, packages: Reading<Vec<Package>>) -> Reading<Software> {
    packages.map(|packages| Software {
        packages,
        flatpaks: flatpaks(source),
    })
}

/// System-wide Flatpak applications: `app/ID/ARCH/BRANCH/active` is the
/// deployed commit. Empty when Flatpak is absent.
pub fn flatpaks(source: &Source) -> Vec<FlatpakApp> {
    let mut apps = Vec::new();
    for id in source.list_dir(FLATPAK_APPS).unwrap_or_default() {
        let app_dir = format!("{FLATPAK_APPS}/{id}");
        for arch in source.list_dir(&app_dir).unwrap_or_default() {
            let arch_dir = format!("{app_dir}/{arch}");
            for branch in source.list_dir(&arch_dir).unwrap_or_default() {
                let active = format!("{arch_dir}/{branch}/active");
                if !source.exists(&active) {
                    continue;
                }
                apps.push(FlatpakApp {
                    version: appstream_version(source, &active, &id),
                    id: id.clone(),
                    branch,
                    arch: arch.clone(),
                });
            }
        }
    }
    apps.sort();
    apps
}

/// The newest `<release version="...">` of the app's AppStream metadata
/// (releases are listed newest first).
fn appstream_version(source: &Source, active: &str, id: &str) -> Option<String> {
    ["metainfo", "appdata"].iter().find_map(|kind| {
        let path = format!("{active}/files/share/{kind}/{id}.{kind}.xml");
        let file = source.open(&path).ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(file, MAX_METAINFO_BYTES),
            &mut text,
        )
        .ok()?;
        let release = &text[text.find("<release ")?..];
        let release = &release[..release.find('>')?];
        let at = release.find("version=")? + "version=".len();
        let quote = release[at..].chars().next()?;
        let rest = &release[at + quote.len_utf8()..];
        let version = &rest[..rest.find(quote)?];
        (!version.is_empty() && version.len() <= 64).then(|| version.to_owned())
    })
}
