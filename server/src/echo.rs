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

/// `text` cut to at most `max` characters at the last separator (space,
/// comma, line break) before the cut, so that a list shown back in its
/// form never ends with half a name, which would read as another name.
pub fn form_value(text: &str, max: usize) -> &str {
    let Some((at, _)) = text.char_indices().nth(max) else {
        return text;
    };
    let head = &text[..at];
    match head.rfind([' ', ',', '\n', '\r', '\t']) {
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
    fn form_values_are_cut_between_names() {
        assert_eq!(form_value("nird-base primtux", 100), "nird-base primtux");
        assert_eq!(form_value("nird-base primtux", 12), "nird-base");
        assert_eq!(
            form_value("nird-base,primtux,extra", 20),
            "nird-base,primtux"
        );
        assert_eq!(form_value("un-seul-nom-tres-long", 5), "");
    }
}
