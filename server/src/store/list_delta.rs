//! A package list as a **delta** of another one: the edit script that
//! makes the new list's bytes out of a base list's.
//!
//! A weekly upgrade changes 20 of 2,500 packages: the new list is the old
//! one but for a few hundred bytes. Storing it whole costs an LZ4 pass
//! over ≈ 245 KB while the check-in waits (≈ 0.36 ms) and ≈ 50 KB of
//! pages written; as a delta, ≈ 0.1 ms (reading the base back) plus this
//! module's pass (≈ 0.02 ms) and a few hundred bytes.
//!
//! The script is a byte-level one, not a per-package diff: its
//! correctness does not depend on how the lists are ordered or on where
//! entries start (which would cost a JSON-aware scan of both lists).
//! [`encode`] walks both texts: a common run is a *copy* from the base, a
//! run of new bytes an *insert*, bytes of the base not kept a *skip*.
//! After a difference, it finds where the texts agree again by looking
//! for 32-byte pieces of the new text in the next few KB of the base
//! (`memchr::memmem`). Whatever it finds, the script it writes rebuilds
//! the new text exactly ([`apply`]); a poor resynchronisation only makes
//! the script longer, and the caller stores the whole list when the script
//! is too long to pay.
//!
//! Format: a sequence of operations, each a LEB128 varint `len << 2 | op`
//! (op 0: copy `len` bytes of the base, 1: skip `len` bytes of the base,
//! 2: insert the `len` bytes that follow).

use thiserror::Error;

/// A script that cannot be applied to its base: a damaged row.
#[derive(Debug, Error)]
pub enum DeltaError {
    /// The script ends inside an operation.
    #[error("list delta truncated")]
    Truncated,
    /// An operation reads past the base.
    #[error("list delta reads past its base ({at} + {len} > {base})")]
    PastBase { at: usize, len: usize, base: usize },
    /// An unknown operation code.
    #[error("list delta has unknown operation {0}")]
    Operation(u64),
    /// The result would exceed the caller's bound.
    #[error("list delta makes more than {0} bytes")]
    TooLarge(usize),
}

const COPY: u64 = 0;
const SKIP: u64 = 1;
const INSERT: u64 = 2;

/// Length of the pieces of new text looked for in the base after a
/// difference: longer than any field value that repeats from one package
/// to the next (`","section":"libs","size_kib":`), so a match is most
/// often the right place.
const ANCHOR: usize = 32;

/// How far (bytes of the new text) the next anchor starts from the last.
const STEP: usize = ANCHOR / 2;

/// How many bytes the texts must agree on, from an anchor, for the
/// anchor's place to be taken as where they agree again (more than a
/// package entry: the same fields with the same values are in many).
const AGREE: usize = 256;

/// How many places of one anchor are tried.
const CANDIDATES: usize = 16;

/// How far ahead in the base an anchor is looked for, and how many bytes
/// of new text are tried as anchors before they are inserted as they are.
const WINDOW: usize = 16 << 10;

/// The script making `new` from `base`, or `None` when it would exceed
/// `limit` bytes (the whole list is then cheaper to store).
pub fn encode(base: &[u8], new: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut script = Vec::with_capacity(1024);
    let (mut b, mut n) = (0, 0);
    while n < new.len() {
        let same = common_prefix(base.get(b..).unwrap_or_default(), &new[n..]);
        if same > 0 {
            push_op(&mut script, COPY, same);
            b += same;
            n += same;
            continue;
        }
        // new[n] is not base[b]: where do they agree again?
        match resync(base, b, new, n) {
            Some((inserted, at)) => {
                if inserted > 0 {
                    push_op(&mut script, INSERT, inserted);
                    script.extend_from_slice(&new[n..n + inserted]);
                }
                if at > b {
                    push_op(&mut script, SKIP, at - b);
                }
                n += inserted;
                b = at;
            }
            None => {
                // Nothing of the next window is in the base ahead: insert
                // it (at least one byte, so the walk goes forward) and try
                // again after it.
                let inserted = (new.len() - n).clamp(1, WINDOW);
                push_op(&mut script, INSERT, inserted);
                script.extend_from_slice(&new[n..n + inserted]);
                n += inserted;
            }
        }
        if script.len() > limit {
            return None;
        }
    }
    (script.len() <= limit).then_some(script)
}

/// Where, after a difference at `new[n]` / `base[b]`, the texts agree
/// again: `(bytes of new to insert, base offset to resume copying at)`,
/// the resumed offset being past `b` or the insert non-empty.
fn resync(base: &[u8], b: usize, new: &[u8], n: usize) -> Option<(usize, usize)> {
    let mut k = 0;
    while k <= WINDOW && n + k + ANCHOR <= new.len() {
        let wanted = &new[n + k..];
        let end = (b + k + WINDOW).min(base.len());
        let ahead = base.get(b..end).unwrap_or_default();
        // The first places the anchor is, as long as the texts go on
        // agreeing past it: a piece such as `","section":"libs","size_kib"`
        // is in most entries, a true resynchronisation runs on to the next
        // change.
        let found = memchr::memmem::find_iter(ahead, &wanted[..ANCHOR])
            .take(CANDIDATES)
            // k == 0 with found == 0 would mean new[n] == base[b].
            .filter(|&found| k > 0 || found > 0)
            .find(|&found| {
                let agree = common_prefix(&base[b + found..], wanted);
                agree >= AGREE || agree == wanted.len() || b + found + agree == base.len()
            });
        if let Some(found) = found {
            return Some((k, b + found));
        }
        k += STEP;
    }
    None
}

/// Length of the common prefix of `a` and `b`, compared 64 bytes at a time
/// (the compiler vectorises the slice comparison) then byte by byte.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 64 <= n && a[i..i + 64] == b[i..i + 64] {
        i += 64;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

fn push_op(script: &mut Vec<u8>, op: u64, len: usize) {
    // usize is at most 64 bits; a length that large never reaches here
    // (lists are bounded far below), the shift only drops its top bits.
    let mut v = ((len as u64) << 2) | op;
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            script.push(byte);
            return;
        }
        script.push(byte | 0x80);
    }
}

fn read_varint(script: &[u8], at: &mut usize) -> Result<u64, DeltaError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *script.get(*at).ok_or(DeltaError::Truncated)?;
        *at += 1;
        v |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DeltaError::Truncated)
}

/// The text `script` makes of `base`, at most `max` bytes long.
pub fn apply(base: &[u8], script: &[u8], max: usize) -> Result<Vec<u8>, DeltaError> {
    let mut out = Vec::with_capacity(base.len().min(max) + 4096);
    let (mut at, mut b) = (0usize, 0usize);
    while at < script.len() {
        let v = read_varint(script, &mut at)?;
        let len = usize::try_from(v >> 2).map_err(|_| DeltaError::TooLarge(max))?;
        match v & 3 {
            COPY | SKIP => {
                let end = b.checked_add(len).filter(|&end| end <= base.len()).ok_or(
                    DeltaError::PastBase {
                        at: b,
                        len,
                        base: base.len(),
                    },
                )?;
                if v & 3 == COPY {
                    if out.len() + len > max {
                        return Err(DeltaError::TooLarge(max));
                    }
                    out.extend_from_slice(&base[b..end]);
                }
                b = end;
            }
            INSERT => {
                let bytes = at
                    .checked_add(len)
                    .and_then(|end| script.get(at..end))
                    .ok_or(DeltaError::Truncated)?;
                if out.len() + len > max {
                    return Err(DeltaError::TooLarge(max));
                }
                out.extend_from_slice(bytes);
                at += len;
            }
            other => return Err(DeltaError::Operation(other)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list shaped like the agent's: sorted entries with repeating keys.
    fn list(n: usize, version: impl Fn(usize) -> String) -> Vec<u8> {
        let entries: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"arch":"amd64","name":"lib{}-{i}","section":"libs","size_kib":{},"version":"{}"}}"#,
                    ["gtk", "qt", "kde", "x11"][i % 4],
                    100 + i % 7,
                    version(i)
                )
            })
            .collect();
        format!(r#"{{"value":{{"packages":[{}]}}}}"#, entries.join(",")).into_bytes()
    }

    fn round_trip(base: &[u8], new: &[u8]) -> usize {
        let script = encode(base, new, usize::MAX).expect("no limit");
        assert_eq!(apply(base, &script, usize::MAX).unwrap(), new);
        script.len()
    }

    #[test]
    fn a_twenty_package_upgrade_is_a_few_hundred_bytes() {
        let base = list(2500, |_| "1.2.3-1".into());
        let new = list(2500, |i| match i % 125 {
            0 => "1.2.3-1+deb12u1".into(),
            _ => "1.2.3-1".into(),
        });
        let len = round_trip(&base, &new);
        assert!(len < 20 * 60, "{len} bytes for 20 upgrades");
    }

    #[test]
    fn added_removed_and_reordered_entries_round_trip() {
        let base = list(600, |i| format!("{i}.0"));
        // Removed: every 50th; added: a new one after every 70th;
        // shortened and lengthened versions.
        let mut entries: Vec<String> = Vec::new();
        for i in 0..600 {
            if i % 50 == 7 {
                continue;
            }
            let version = match i % 90 {
                3 => "9".to_string(),
                4 => format!("{i}.0+a-much-longer-version-string-{i}"),
                _ => format!("{i}.0"),
            };
            entries.push(format!(
                r#"{{"arch":"amd64","name":"lib{}-{i}","section":"libs","size_kib":{},"version":"{version}"}}"#,
                ["gtk", "qt", "kde", "x11"][i % 4],
                100 + i % 7
            ));
            if i % 70 == 0 {
                entries.push(format!(
                    r#"{{"arch":"all","name":"new-{i}","version":"1"}}"#
                ));
            }
        }
        entries.swap(10, 500);
        let new = format!(r#"{{"value":{{"packages":[{}]}}}}"#, entries.join(",")).into_bytes();
        let len = round_trip(&base, &new);
        assert!(len < new.len() / 4, "{len} bytes");
    }

    #[test]
    fn unrelated_empty_and_identical_texts_round_trip() {
        let a = list(300, |i| i.to_string());
        let b: Vec<u8> = (0..40_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for (base, new) in [
            (&a[..], &b[..]),
            (&b[..], &a[..]),
            (&a[..], &a[..]),
            (&[][..], &a[..]),
            (&a[..], &[][..]),
            (&a[..], &a[..a.len() / 2]),
            (&a[..a.len() / 2], &a[..]),
            (&a[..], &a[1..]),
        ] {
            round_trip(base, new);
        }
        assert_eq!(round_trip(&a, &a), 3, "one copy");
    }

    #[test]
    fn random_edits_round_trip() {
        // A small deterministic generator: no new dependency for a test.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound as u64) as usize
        };
        let base = list(400, |i| format!("{}.{}", i % 9, i % 13));
        for _ in 0..300 {
            let mut new = base.clone();
            for _ in 0..next(12) {
                let at = next(new.len().max(1));
                match next(3) {
                    0 => {
                        let end = (at + next(300)).min(new.len());
                        new.drain(at..end);
                    }
                    1 => {
                        let piece: Vec<u8> =
                            (0..next(200)).map(|_| b'a' + next(26) as u8).collect();
                        new.splice(at..at, piece);
                    }
                    _ => {
                        // A piece of the base moved elsewhere.
                        let from = next(base.len());
                        let end = (from + next(500)).min(base.len());
                        new.splice(at..at, base[from..end].iter().copied());
                    }
                }
            }
            round_trip(&base, &new);
        }
    }

    #[test]
    fn a_limit_gives_up() {
        let a = list(300, |i| i.to_string());
        let b = list(300, |i| format!("{i}-changed"));
        assert!(encode(&a, &b, 100).is_none());
        assert!(encode(&a, &a, 100).is_some());
    }

    #[test]
    fn damaged_scripts_are_errors() {
        let base = b"0123456789";
        let script = encode(base, b"0123abc6789", usize::MAX).unwrap();
        assert_eq!(apply(base, &script, 100).unwrap(), b"0123abc6789");
        // Truncated anywhere: an error or a shorter text, never a panic.
        for cut in 0..script.len() {
            if let Ok(text) = apply(base, &script[..cut], 100) {
                assert!(text.len() < 11);
            }
        }
        assert!(matches!(
            apply(base, &[0x80], 100),
            Err(DeltaError::Truncated)
        ));
        // Copy 11 bytes of a 10-byte base.
        assert!(matches!(
            apply(base, &[11 << 2], 100),
            Err(DeltaError::PastBase { .. })
        ));
        assert!(matches!(
            apply(base, &[3], 100),
            Err(DeltaError::Operation(3))
        ));
        // Insert 5 bytes, 2 present.
        assert!(matches!(
            apply(base, &[(5 << 2) | 2, b'a', b'b'], 100),
            Err(DeltaError::Truncated)
        ));
        assert!(matches!(
            apply(base, &[10 << 2], 5),
            Err(DeltaError::TooLarge(5))
        ));
        // A varint longer than 64 bits.
        assert!(apply(base, &[0xFF; 11], 100).is_err());
    }
}
