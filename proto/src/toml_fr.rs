//! French sentences for the English messages of the `toml` parser and of
//! serde, so that a typo in a profile, a keyring, a kit or a configuration
//! file is explained to school IT staff in their language. Pure text in,
//! text out; a message not recognised keeps its English text after a French
//! lead-in rather than being lost.

/// The French sentence for a `toml::de::Error::message()`.
pub fn french(message: &str) -> String {
    let m = message.trim();
    if let Some(rest) = m.strip_prefix("unknown field ") {
        let name = quoted(rest).unwrap_or(rest);
        let expected = rest
            .split_once("expected ")
            .map(|(_, e)| format!(" (clés permises : {})", e.replace(['`'], "")))
            .unwrap_or_default();
        return format!("clé inconnue « {name} »{expected} : vérifiez l'orthographe");
    }
    if let Some(rest) = m.strip_prefix("missing field ") {
        return format!(
            "clé obligatoire manquante : « {} »",
            quoted(rest).unwrap_or(rest)
        );
    }
    if m.starts_with("duplicate key") {
        let name = quoted(m).map(|n| format!(" « {n} »")).unwrap_or_default();
        return format!("la clé{name} est donnée deux fois");
    }
    if let Some(rest) = m.strip_prefix("unknown variant ") {
        let value = quoted(rest).unwrap_or(rest);
        let expected = rest
            .split_once("expected ")
            .map(|(_, e)| format!(" (valeurs permises : {})", e.replace(['`'], "")))
            .unwrap_or_default();
        return format!("valeur « {value} » inconnue{expected}");
    }
    if let Some(rest) = m.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        if expected.contains("datetime") || expected.contains("date") {
            if let Some(value) = found.strip_prefix("string ") {
                return format!(
                    "une date s'écrit sans guillemets : enlevez les guillemets autour de {}",
                    value.replace('"', "")
                );
            }
            return "il faut une date AAAA-MM-JJ (sans guillemets)".into();
        }
        return format!(
            "valeur du mauvais type : il faut {}, pas {}",
            kind_fr(expected),
            kind_fr(found)
        );
    }
    if m.starts_with("invalid value") {
        return format!("valeur invalide ({m})");
    }
    let known: &[(&str, &str)] = &[
        (
            "missing comma between array elements",
            "virgule manquante entre deux éléments d'une liste [ … ]",
        ),
        ("unclosed array", "liste non fermée : il manque un « ] »"),
        (
            "unclosed table",
            "en-tête de section non fermé : il manque un « ] »",
        ),
        (
            "unclosed inline table",
            "table en ligne non fermée : il manque un « } »",
        ),
        (
            "invalid basic string",
            "chaîne invalide : un guillemet fermant manque, ou un caractère de contrôle est dedans",
        ),
        (
            "invalid literal string",
            "chaîne littérale invalide : une apostrophe fermante manque",
        ),
        (
            "invalid multiline basic string",
            "chaîne sur plusieurs lignes non fermée : il manque les trois guillemets fermants",
        ),
        (
            "key with no value",
            "clé sans valeur : écrivez « clé = valeur »",
        ),
        (
            "expected newline",
            "une seule « clé = valeur » par ligne : passez à la ligne",
        ),
        ("invalid key", "nom de clé invalide"),
        (
            "string values must be quoted",
            "valeur illisible : une chaîne s'écrit entre guillemets, un nombre ou une date sans, \
             et les éléments d'une liste [ … ] sont séparés par des virgules",
        ),
        (
            "invalid escape",
            "échappement invalide dans une chaîne (\\ suivi d'un caractère inconnu)",
        ),
        (
            "invalid unquoted key",
            "nom de clé invalide : lettres, chiffres, - et _ seulement, ou entre guillemets",
        ),
        ("invalid inline table", "table en ligne { … } invalide"),
        ("invalid table header", "en-tête de section [ … ] invalide"),
        ("invalid array", "liste [ … ] invalide"),
        ("invalid number", "nombre invalide"),
        ("invalid datetime", "date invalide : attendu AAAA-MM-JJ"),
        (
            "invalid date",
            "date invalide : attendu AAAA-MM-JJ, mois 01 à 12, jour 01 à 31",
        ),
        ("invalid time", "heure invalide : attendu HH:MM:SS"),
        ("number too large", "nombre trop grand"),
    ];
    for (en, fr) in known {
        if m.contains(en) {
            return (*fr).to_owned();
        }
    }
    if m.starts_with("expected") || m.contains("expected `") {
        return format!(
            "syntaxe TOML invalide (attendu : {})",
            m.trim_start_matches("expected ")
        );
    }
    format!("syntaxe TOML invalide ({m})")
}

/// The first `` `…` `` quoted word of a serde message.
fn quoted(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let len = text[start..].find('`')?;
    Some(&text[start..start + len])
}

/// French name of a serde type description (`string "x"`, `integer`, ...).
fn kind_fr(what: &str) -> String {
    let w = what.trim().replace('`', "");
    let w = w
        .strip_prefix("a ")
        .or_else(|| w.strip_prefix("an "))
        .unwrap_or(&w);
    let (head, value) = w.split_once(' ').unwrap_or((w, ""));
    let name = match head {
        "string" => "une chaîne",
        "integer" | "i64" | "u64" | "u32" | "i32" | "u16" | "u8" | "usize" => "un nombre entier",
        "float" | "f64" => "un nombre décimal",
        "boolean" | "bool" => "un booléen (true ou false)",
        "sequence" | "array" => "une liste [ … ]",
        "map" | "table" | "struct" => "une table",
        _ => return w.to_owned(),
    };
    if value.is_empty() || !matches!(head, "string" | "integer" | "float" | "boolean") {
        name.to_owned()
    } else {
        format!("{name} ({value})")
    }
}

#[cfg(test)]
mod tests {
    use super::french;

    fn toml_message(text: &str) -> String {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            expires: Option<toml::value::Datetime>,
            list: Option<Vec<toml::Value>>,
            n: Option<i64>,
            name: Option<String>,
        }
        toml::from_str::<T>(text).unwrap_err().message().to_owned()
    }

    #[test]
    fn the_messages_new_users_meet_are_french() {
        let m = french(&toml_message("expires = \"2027-08-31\"\n"));
        assert!(
            m.contains("enlevez les guillemets autour de 2027-08-31"),
            "{m}"
        );
        let m = french(&toml_message("list = [1 2]\n"));
        assert!(m.contains("virgules"), "{m}");
        let m = french("missing comma between array elements, expected `,`");
        assert!(m.contains("virgule manquante"), "{m}");
        let m = french(&toml_message("nom = 1\n"));
        assert!(m.contains("clé inconnue « nom »"), "{m}");
        let m = french(&toml_message("n = \"3\"\n"));
        assert!(
            m.contains("une chaîne") && m.contains("un nombre entier"),
            "{m}"
        );
        let m = french(&toml_message("name = 'x'\nname = 'y'\n"));
        assert!(m.contains("deux fois"), "{m}");
        let m = french(&toml_message("name = \"x\n"));
        assert!(m.contains("chaîne"), "{m}");
        for (text, needle) in [
            ("list = [1,", "« ] »"),
            ("[x", "« ] »"),
            ("a b = 1", "clé = valeur"),
            ("n = x", "guillemets"),
            ("list = [2027-13-01]", "date invalide"),
        ] {
            let m = french(&toml_message(text));
            assert!(m.contains(needle), "{text}: {m}");
            assert!(!m.contains("expected"), "{text}: {m}");
        }
    }
}
