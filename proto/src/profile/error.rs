//! Errors found while reading a profile: each one names the file, the line
//! and the column, and says what to do. Messages are in French: maintainers
//! and school IT staff read them in `nird-server profile lint`.

use std::fmt;

/// A position in a profile file, 1-based like every editor shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The line and column of byte `offset` in `source`.
    pub fn of_offset(source: &str, offset: usize) -> Self {
        let offset = offset.min(source.len());
        // Byte offsets from the TOML parser fall on char boundaries; step back
        // to one anyway so slicing can never panic.
        let mut offset = offset;
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column }
    }
}

/// One problem in one profile file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where it is; `None` when it concerns the file as a whole.
    pub location: Option<Location>,
    /// What is wrong and what to do, in French.
    pub message: String,
}

/// Every problem found in a profile file (parsing goes on after the first
/// semantic problem, so `lint` can list them all at once).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ProfileError {
    /// The file name as given by the caller (used only in messages).
    pub file: String,
    /// At least one problem.
    pub problems: Vec<Problem>,
}

impl ProfileError {
    pub(crate) fn single(file: &str, location: Option<Location>, message: String) -> Self {
        ProfileError {
            file: file.to_owned(),
            problems: vec![Problem { location, message }],
        }
    }
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match p.location {
                Some(l) => write!(f, "{}:{}:{}: {}", self.file, l.line, l.column, p.message)?,
                None => write!(f, "{}: {}", self.file, p.message)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_and_count_chars() {
        let src = "ab\ncdé\nf";
        assert_eq!(Location::of_offset(src, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of_offset(src, 3), Location { line: 2, column: 1 });
        // 'é' is two bytes; the offset after it is column 4.
        assert_eq!(Location::of_offset(src, 7), Location { line: 2, column: 4 });
        // Inside a multi-byte char: no panic.
        assert_eq!(Location::of_offset(src, 6).line, 2);
        assert_eq!(Location::of_offset(src, 999).line, 3);
    }
}
