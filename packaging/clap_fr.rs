//! Command-line usage errors in French. clap writes its own errors in
//! English ("the argument '--kit' cannot be used with '--server'"); the
//! people who type `nird-agent` and `nird-server` are school IT staff, so
//! each error kind is rebuilt here from clap's structured context into one
//! French sentence, followed by the usage line. Help and version output are
//! left to clap. One file compiled into both binaries (`#[path]` in each
//! crate's `lib.rs`), like `generate_docs.rs`.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Parses the command line; on a usage error prints it in French and exits
/// with status 2 (clap's own code for usage errors).
pub fn parse_or_exit<P: clap::Parser>() -> P {
    match P::try_parse() {
        Ok(p) => p,
        Err(e) => match french(&e) {
            Some(text) => {
                let bin = <P as clap::CommandFactory>::command().get_name().to_owned();
                eprintln!("{bin} : {text}");
                if let Some(ContextValue::StyledStr(usage)) = e.get(ContextKind::Usage) {
                    let usage = usage.to_string();
                    let usage = usage.trim().trim_start_matches("Usage:").trim();
                    eprintln!("\nUtilisation : {usage}");
                }
                eprintln!("Pour en savoir plus : {bin} --help");
                std::process::exit(2);
            }
            None => e.exit(),
        },
    }
}

fn one(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => Some(v.join(", ")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        ContextValue::StyledStrs(v) => Some(
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ContextValue::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// ` (vouliez-vous dire « X » ?)` when clap has a suggestion.
fn suggestion(e: &clap::Error) -> String {
    [
        ContextKind::SuggestedArg,
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedValue,
    ]
    .into_iter()
    .find_map(|k| one(e, k))
    .map(|s| format!(" (vouliez-vous dire « {s} » ?)"))
    .unwrap_or_default()
}

/// Why a value was refused by its parser, in French when recognised.
fn value_reason(e: &clap::Error) -> String {
    let source = std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_default();
    if let Some((_, range)) = source.split_once(" is not in ") {
        let range = range.replace("..=", " et ").replace("..", " et ");
        return format!(" : il faut un nombre entre {range}");
    }
    if source.contains("invalid digit") || source.contains("cannot parse integer") {
        return " : il faut un nombre entier".into();
    }
    if source.contains("invalid socket address") || source.contains("invalid IP") {
        return " : il faut une adresse et un port, par exemple 0.0.0.0:8443".into();
    }
    if source.is_empty() {
        String::new()
    } else {
        format!(" ({source})")
    }
}

/// The French sentence for a usage error; `None` for help and version
/// output (and kinds clap prints well enough).
pub fn french(e: &clap::Error) -> Option<String> {
    let arg = one(e, ContextKind::InvalidArg).unwrap_or_default();
    let value = one(e, ContextKind::InvalidValue).unwrap_or_default();
    Some(match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => return None,
        ErrorKind::InvalidValue => {
            let valid = one(e, ContextKind::ValidValue)
                .map(|v| format!(" ; valeurs possibles : {v}"))
                .unwrap_or_default();
            if value.is_empty() {
                format!("il manque une valeur après {arg}{valid}")
            } else {
                format!(
                    "valeur « {value} » invalide pour {arg}{valid}{}",
                    suggestion(e)
                )
            }
        }
        ErrorKind::ValueValidation => {
            format!("valeur « {value} » invalide pour {arg}{}", value_reason(e))
        }
        ErrorKind::UnknownArgument => {
            format!("option inconnue « {arg} »{}", suggestion(e))
        }
        ErrorKind::InvalidSubcommand => {
            let sub = one(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            format!("commande inconnue « {sub} »{}", suggestion(e))
        }
        ErrorKind::NoEquals => format!("{arg} s'écrit avec « = » : {arg}=VALEUR"),
        ErrorKind::TooManyValues => format!("trop de valeurs pour {arg} (« {value} » en trop)"),
        ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues => {
            format!("nombre de valeurs incorrect pour {arg}")
        }
        ErrorKind::ArgumentConflict => match one(e, ContextKind::PriorArg) {
            Some(prior) if prior == arg => format!("{arg} est donné deux fois"),
            Some(prior) => format!("{arg} ne peut pas être donné avec {prior}"),
            None => format!("{arg} ne peut pas être donné avec les autres options"),
        },
        ErrorKind::MissingRequiredArgument => {
            format!("argument obligatoire manquant : {arg}")
        }
        ErrorKind::MissingSubcommand => "il manque la commande".to_owned(),
        ErrorKind::InvalidUtf8 => "un argument n'est pas du texte UTF-8".to_owned(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::french;
    use clap::{Arg, Command};

    fn cmd() -> Command {
        Command::new("nird-test")
            .arg(Arg::new("kit").long("kit").conflicts_with("server"))
            .arg(Arg::new("server").long("server"))
            .arg(
                Arg::new("uses")
                    .long("uses")
                    .value_parser(clap::value_parser!(u32).range(1..=100)),
            )
            .arg(Arg::new("school").long("school").required(true))
    }

    fn err(args: &[&str]) -> String {
        let e = cmd()
            .try_get_matches_from(std::iter::once("nird-test").chain(args.iter().copied()))
            .unwrap_err();
        french(&e).unwrap_or_else(|| panic!("no French for {e}"))
    }

    #[test]
    fn usage_errors_are_french() {
        let m = err(&["--school", "x", "--kit", "k", "--server", "s"]);
        assert!(m.contains("ne peut pas être donné avec"), "{m}");
        let m = err(&[]);
        assert!(
            m.contains("argument obligatoire manquant : --school"),
            "{m}"
        );
        let m = err(&["--school", "x", "--uses", "0"]);
        assert!(m.contains("entre 1 et 100"), "{m}");
        let m = err(&["--school", "x", "--uses", "abc"]);
        assert!(m.contains("nombre entier"), "{m}");
        let m = err(&["--school", "x", "--kti", "k"]);
        // (The suggestion « --kit » comes only with clap's `suggestions`.)
        assert!(m.starts_with("option inconnue « --kti »"), "{m}");
        let help = cmd()
            .try_get_matches_from(["nird-test", "--help"])
            .unwrap_err();
        assert!(french(&help).is_none());
    }
}
