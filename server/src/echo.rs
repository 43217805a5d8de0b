//! What people typed, cut short before it is shown back: in a message that
//! quotes it, or in the form that comes back after a refusal. A form's
//! body may be 256 KiB; a page quoting it whole would be that big, and a
//! 3,000-character name made a page 29,000 px wide.

/// `text` cut to `max` characters, « … » marking the cut: a value quoted
/// in a message.
pub fn quoted(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// What separates the names of a profile list (as the form reads it).
pub const NAME_SEPARATORS: &[char] = &[' ', ',', '\n', '\r', '\t'];
/// What separates the nodes of a scope: a commune may hold spaces.
pub const LINE_SEPARATORS: &[char] = &[',', '\n', '\r'];

/// `text` cut to at most `max` characters at the last of `separators`
/// before the cut, so that a list shown back in its form never ends with
/// half an item, which would read as another one.
pub fn form_value<'t>(text: &'t str, max: usize, separators: &[char]) -> &'t str {
    let Some((at, _)) = text.char_indices().nth(max) else {
        return text;
    };
    let head = &text[..at];
    match head.rfind(separators) {
        Some(sep) => &head[..sep],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_cut_on_characters() {
        assert_eq!(quoted("école", 10), "école");
        assert_eq!(quoted("éééé", 2), "éé…");
    }

    #[test]
    fn form_values_are_cut_between_items() {
        let names = NAME_SEPARATORS;
        assert_eq!(
            form_value("nird-base primtux", 100, names),
            "nird-base primtux"
        );
        assert_eq!(form_value("nird-base primtux", 12, names), "nird-base");
        assert_eq!(
            form_value("nird-base,primtux,extra", 20, names),
            "nird-base,primtux"
        );
        assert_eq!(form_value("un-seul-nom-tres-long", 5, names), "");
        // A commune keeps its spaces.
        let scope = "uai:0620056Z\ncommune:062/Le Portel";
        assert_eq!(form_value(scope, 30, LINE_SEPARATORS), "uai:0620056Z");
    }
}
