//! When was a processor launched? A small table from CPUID vendor, family
//! and model to the microarchitecture and the year its first parts shipped,
//! so the audit can date a machine whose BIOS was updated (a 2012 laptop
//! with a 2019 BIOS is still a 2012 laptop) and count CPU generations.
//!
//! Years are those of the first retail parts of each microarchitecture
//! (Intel ARK "launch date", AMD product pages); where one model number
//! spans two generations (Intel 0x8E / 0x9E) the stepping decides. Unknown
//! identifications answer `None`: never a guess.

/// A processor generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuGeneration {
    /// Microarchitecture (code name), e.g. "Ivy Bridge".
    pub name: &'static str,
    /// Year the first parts of this generation were sold.
    pub year: u16,
}

const fn g(name: &'static str, year: u16) -> Option<CpuGeneration> {
    Some(CpuGeneration { name, year })
}

/// The generation of a CPU from its CPUID identification.
pub fn generation(
    vendor: Option<&str>,
    family: Option<u32>,
    model: Option<u32>,
    stepping: Option<u32>,
) -> Option<CpuGeneration> {
    match vendor? {
        "GenuineIntel" => intel(family?, model?, stepping),
        "AuthenticAMD" | "HygonGenuine" => amd(family?, model?),
        _ => None,
    }
}

fn intel(family: u32, model: u32, stepping: Option<u32>) -> Option<CpuGeneration> {
    if family == 15 {
        return g("NetBurst (Pentium 4)", 2002);
    }
    if family != 6 {
        return None;
    }
    match model {
        0x09 => g("Banias (Pentium M)", 2003),
        0x0d => g("Dothan (Pentium M)", 2004),
        0x0e => g("Yonah (Core Duo)", 2006),
        0x0f | 0x16 => g("Merom (Core 2)", 2006),
        0x17 | 0x1d => g("Penryn (Core 2)", 2008),
        0x1a | 0x1e | 0x1f | 0x2e => g("Nehalem", 2009),
        0x25 | 0x2c | 0x2f => g("Westmere", 2010),
        0x2a | 0x2d => g("Sandy Bridge", 2011),
        0x3a | 0x3e => g("Ivy Bridge", 2012),
        0x3c | 0x3f | 0x45 | 0x46 => g("Haswell", 2013),
        0x3d | 0x47 | 0x4f | 0x56 => g("Broadwell", 2015),
        0x4e | 0x5e => g("Skylake", 2015),
        0x55 => g("Skylake / Cascade Lake (Xeon)", 2017),
        // Kaby Lake (stepping 9, also Amber Lake-Y), Kaby Lake R (10),
        // Whiskey Lake (11), Comet Lake-U (12).
        0x8e => match stepping {
            Some(10) => g("Kaby Lake R", 2017),
            Some(11) => g("Whiskey Lake", 2018),
            Some(12) => g("Comet Lake", 2019),
            _ => g("Kaby Lake", 2016),
        },
        // Kaby Lake-S/H (9), Coffee Lake (10 to 13).
        0x9e => match stepping {
            Some(s) if s >= 10 => g("Coffee Lake", 2017),
            _ => g("Kaby Lake", 2017),
        },
        0x66 => g("Cannon Lake", 2018),
        0x7d | 0x7e => g("Ice Lake", 2019),
        0x6a | 0x6c => g("Ice Lake (Xeon)", 2021),
        0xa5 | 0xa6 => g("Comet Lake", 2019),
        0x8c | 0x8d => g("Tiger Lake", 2020),
        0xa7 => g("Rocket Lake", 2021),
        0x97 | 0x9a => g("Alder Lake", 2021),
        0xbe => g("Alder Lake-N", 2023),
        0xb7 | 0xba | 0xbf => g("Raptor Lake", 2022),
        0xaa | 0xac => g("Meteor Lake", 2023),
        0xbd => g("Lunar Lake", 2024),
        0xc5 | 0xc6 => g("Arrow Lake", 2024),
        0x1c | 0x26 => g("Bonnell (Atom)", 2008),
        0x27 | 0x35 | 0x36 => g("Saltwell (Atom)", 2011),
        0x37 | 0x4a | 0x4d | 0x5a => g("Silvermont (Atom, Bay Trail)", 2013),
        0x4c => g("Airmont (Atom, Braswell)", 2015),
        0x5c | 0x5f => g("Goldmont (Apollo Lake)", 2016),
        0x7a => g("Goldmont Plus (Gemini Lake)", 2017),
        0x86 | 0x96 | 0x9c => g("Tremont (Jasper / Elkhart Lake)", 2021),
        0x8a => g("Lakefield", 2020),
        _ => None,
    }
}

fn amd(family: u32, model: u32) -> Option<CpuGeneration> {
    match family {
        0x0f => g("K8 (Athlon 64)", 2003),
        0x10 => g("K10 (Phenom, Athlon II)", 2008),
        0x11 => g("K8 (Turion X2 Ultra)", 2008),
        0x12 => g("K10 (Llano)", 2011),
        0x14 => g("Bobcat", 2011),
        0x15 => match model {
            0x00..=0x0f => g("Bulldozer / Piledriver", 2011),
            0x10..=0x2f => g("Piledriver", 2012),
            0x30..=0x5f => g("Steamroller", 2014),
            0x60..=0x6f => g("Excavator", 2015),
            _ => g("Excavator (Stoney Ridge)", 2016),
        },
        0x16 => match model {
            0x00..=0x2f => g("Jaguar", 2013),
            _ => g("Puma", 2014),
        },
        0x17 => match model {
            0x00..=0x07 => g("Zen", 2017),
            0x10..=0x17 | 0x20..=0x2f => g("Zen (Raven Ridge)", 2018),
            0x08..=0x0f => g("Zen+", 2018),
            0x18..=0x1f => g("Zen+ (Picasso)", 2019),
            0x60..=0x6f => g("Zen 2 (Renoir)", 2020),
            0x90..=0xaf => g("Zen 2 (Van Gogh, Mendocino)", 2022),
            _ => g("Zen 2", 2019),
        },
        0x19 => match model {
            0x00..=0x0f | 0x20..=0x2f | 0x50..=0x5f => g("Zen 3", 2020),
            0x40..=0x4f => g("Zen 3+", 2022),
            _ => g("Zen 4", 2022),
        },
        0x1a => g("Zen 5", 2024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intel(model: u32, stepping: u32) -> Option<(&'static str, u16)> {
        generation(Some("GenuineIntel"), Some(6), Some(model), Some(stepping))
            .map(|g| (g.name, g.year))
    }

    #[test]
    fn known_processors_are_dated() {
        // i5-3320M (ThinkPad T430).
        assert_eq!(intel(0x3a, 9), Some(("Ivy Bridge", 2012)));
        // i5-8250U: Kaby Lake R, 8th generation.
        assert_eq!(intel(0x8e, 10), Some(("Kaby Lake R", 2017)));
        assert_eq!(intel(0x8e, 9), Some(("Kaby Lake", 2016)));
        assert_eq!(intel(0x9e, 10), Some(("Coffee Lake", 2017)));
        let ryzen = generation(Some("AuthenticAMD"), Some(0x17), Some(0x08), None).unwrap();
        assert_eq!((ryzen.name, ryzen.year), ("Zen+", 2018));
        assert_eq!(
            generation(Some("GenuineIntel"), Some(6), Some(0xff), Some(0)),
            None
        );
        assert_eq!(generation(None, Some(6), Some(0x3a), Some(9)), None);
        assert_eq!(generation(Some("VIA"), Some(6), Some(0x0f), None), None);
    }
}
