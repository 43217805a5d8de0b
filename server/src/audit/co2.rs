//! CO2e avoided by reuse: the factors (configurable in `server.toml`,
//! `[audit]`), their sources and the method, printed next to every figure
//! and in every export. Never one unexplained number.

/// Seconds in a mean Gregorian year (365.2425 days).
pub const YEAR_SECS: i64 = 31_556_952;

/// The emission factors and the reference lifetime. Grams, so the settings
/// compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Co2Factors {
    /// Manufacture footprint of a laptop, gCO2e.
    pub laptop_manufacture_g: u64,
    /// Manufacture footprint of a professional desktop without screen,
    /// gCO2e.
    pub desktop_manufacture_g: u64,
    /// Manufacture footprint of a computer screen (24 inches), gCO2e:
    /// counted for the external screens reused with machines in use.
    pub screen_manufacture_g: u64,
    /// Avoided per year a reconditioned computer is used instead of a new
    /// one, gCO2e.
    pub reuse_year_g: u64,
    /// Reference service life of a professional computer, years: reuse
    /// past its estimated build year plus this is "extended life".
    pub standard_life_years: u32,
}

impl Default for Co2Factors {
    fn default() -> Self {
        Co2Factors {
            laptop_manufacture_g: 182_600,
            desktop_manufacture_g: 204_400,
            screen_manufacture_g: 65_900,
            reuse_year_g: 27_000,
            standard_life_years: 5,
        }
    }
}

/// The sources of the default factors, as printed.
pub const SOURCES: [(&str, &str); 4] = [
    (
        "Ordinateur portable : 182,6 kgCO2e ; ordinateur fixe professionnel sans écran : 204,4 kgCO2e (fabrication)",
        "ADEME, base Impact CO2 (impactco2.fr, « Numérique »), d'après l'étude ADEME–Arcep « Évaluation de l'impact environnemental du numérique en France » (2022)",
    ),
    (
        "Écran d'ordinateur 24 pouces : 65,9 kgCO2e (fabrication)",
        "ADEME, base Impact CO2 (impactco2.fr, « Numérique », écran), même étude ADEME–Arcep (2022)",
    ),
    (
        "27 kgCO2e évités par année d'usage d'un ordinateur portable reconditionné au lieu d'un neuf",
        "ADEME / NégaOctet, « Évaluation de l'impact environnemental d'un ordinateur reconditionné » (2022)",
    ),
    (
        "Durée d'usage de référence d'un ordinateur professionnel : 5 ans",
        "hypothèse de ce serveur (durée d'amortissement usuelle du matériel informatique), réglable",
    ),
];

/// kgCO2e of grams, for display.
pub fn kg(g: f64) -> f64 {
    g / 1000.0
}

/// A French number with `decimals` decimals and a thin space between
/// thousands ("12 345,6").
pub fn fr_number(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, ""));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push('\u{202f}');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && v.abs() >= 0.5 * 10f64.powi(-(decimals as i32)) {
        "-"
    } else {
        ""
    };
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped},{frac}")
    }
}

/// The method, as printed on the page, the report and in exports.
pub fn method(f: &Co2Factors) -> Vec<String> {
    vec![
        format!(
            "Fabrication évitée : chaque machine en service à la fin de la période évite la \
             fabrication d'une machine neuve de sa classe : portable {} kgCO2e, fixe (y compris \
             tout-en-un et mini-PC) {} kgCO2e ; les autres classes (tablette, serveur, inconnue) \
             ne sont pas comptées. C'est un stock : ne pas additionner les chiffres de plusieurs \
             périodes.",
            fr_number(kg(f.laptop_manufacture_g as f64), 1),
            fr_number(kg(f.desktop_manufacture_g as f64), 1)
        ),
        format!(
            "Écrans : chaque écran externe branché sur une machine en service (lu dans son EDID ; \
             l'écran intégré d'un portable n'est pas compté, il l'est avec le portable) évite la \
             fabrication d'un écran neuf : {} kgCO2e par écran. Un poste dont l'agent ne signale \
             pas les écrans compte zéro écran.",
            fr_number(kg(f.screen_manufacture_g as f64), 1)
        ),
        format!(
            "Usage prolongé : {} kgCO2e par année de vie prolongée, appliqué à toutes les \
             classes. La vie prolongée d'une machine est le temps, dans la période, entre la \
             plus tardive de sa date d'inscription et de la fin de sa durée d'usage de référence \
             (année de fabrication estimée + {} ans) et son dernier contact ; une machine dont \
             l'âge est inconnu compte zéro.",
            fr_number(kg(f.reuse_year_g as f64), 1),
            f.standard_life_years
        ),
        "Année de fabrication estimée : année de la date du BIOS, jamais plus d'un an après le \
         lancement du processeur (une mise à jour du BIOS rajeunit une machine en apparence), \
         ou année de lancement du processeur quand la date du BIOS manque."
            .to_owned(),
        "En service : machine inscrite, non retirée, vue par le serveur dans les 30 jours \
         précédant la fin de la période (ou aujourd'hui si la période n'est pas finie) : un \
         contact de son agent, ou son inscription, que l'agent fait depuis la machine avec son \
         inventaire."
            .to_owned(),
        "Verdict Windows 11 : exigences publiées par Microsoft (TPM 2.0, processeur pris en \
         charge, 4 Go de mémoire, disque de 64 Go, UEFI et Secure Boot), recalculé par le \
         serveur à chaque inventaire."
            .to_owned(),
        "Ces chiffres sont des estimations : les facteurs viennent des sources ci-dessous et \
         se règlent dans la section [audit] du fichier de configuration du serveur."
            .to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_numbers() {
        assert_eq!(fr_number(182.6, 1), "182,6");
        assert_eq!(fr_number(1_234_567.25, 2), "1\u{202f}234\u{202f}567,25");
        assert_eq!(fr_number(999.0, 0), "999");
        assert_eq!(fr_number(-12.5, 1), "-12,5");
    }
}
