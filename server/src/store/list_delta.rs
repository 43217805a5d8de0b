//! A package list as a **delta** of another one: the edit script that
//! makes the new list's bytes out of a base list's.
//!
//! A weekly upgrade changes 20 of 2,500 packages: the new list is the old
//! one but for a few hundred bytes. Storing it whole costs an LZ4 pass
//! over ≈ 245 KB while the check-in waits (≈ 0.3 ms) and ≈ 53 KB of
//! pages written; as a delta, ≈ 0.1 ms (reading the base back) plus this
//! module's pass (≈ 0.01 ms, ≈ 0.2 ms 40 upgrades after the base) and
//! ≈ 110 bytes (`cargo bench -p nird-server --bench list_delta`).
//!
//! The script is a byte-level one, not a per-package diff: its
//! correctness does not depend on how the lists are ordered or on where
//! entries start (which would cost a JSON-aware scan of both lists).
//! [`encode`] walks both texts: a common run is a *copy* from the base, a
//! run of new bytes an *insert*, bytes of the base not kept a *skip*.
//! After a difference, it finds where the texts agree again by looking
//! for 32-byte pieces of the new text in the base ahead (`memchr::memmem`):
//! near first (a version changed), then far in the base (packages
//! removed), then far in the new text (packages installed), within a
//! budget of work (bytes searched and compared), so a list unrelated to
//! its base gives up in about half the time compressing it takes, and no
//! text an agent sends costs much more. Whatever it finds, the script it
//! writes rebuilds the new text exactly ([`apply`]); a poor
//! resynchronisation only makes the script longer, and the caller stores
//! the whole list when the script is too long to pay.
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

/// Agreeing this long from an anchor's place (more than a package entry:
/// the same fields with the same values are in many), the place is taken
/// at once; otherwise the place agreeing longest is, if it agrees for at
/// least [`MIN_AGREE`] bytes (changed packages may be neighbours).
const AGREE: usize = 512;

/// See [`AGREE`].
const MIN_AGREE: usize = 2 * ANCHOR;

/// How many places of one anchor are tried.
const CANDIDATES: usize = 16;

/// The near search ([`SEARCHES`]): how far ahead in the base an anchor
/// is looked for, and how many bytes of new text are tried as anchors.
const NEAR: usize = 256;

/// Bytes of the base searched or compared, in all, per byte of the new
/// list.
const SEARCH_BUDGET: usize = 4;

/// What setting up the search of one anchor costs, counted in bytes
/// searched (`memchr::memmem`'s searcher is built for each anchor: as long
/// as searching ≈ 256 bytes, measured). Without it, anchors tried in a
/// window of a few bytes (the base nearly used up) cost the budget little
/// and the encoder nothing less.
const SETUP: usize = 256;

/// The far searches ([`SEARCHES`]): how far ahead in the base an anchor
/// is looked for, and how many bytes of new text are tried as anchors.
const WINDOW: usize = 16 << 10;

/// The script making `new` from `base`, or `None` when it would exceed
/// `limit` bytes or take too long to find (the whole list is then cheaper
/// to store).
pub fn encode(base: &[u8], new: &[u8], limit: usize) -> Option<Vec<u8>> {
    let mut script = Vec::with_capacity(1024);
    // Bytes of the base the resynchronisations may search and compare,
    // in all: a list unrelated to its base gives up after a few passes'
    // worth instead of searching every window, and no text (an agent's
    // list is anyone's) costs more.
    let mut budget = SEARCH_BUDGET * new.len() + (128 << 10);
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
        match resync(base, b, new, n, &mut budget)? {
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
                // Both much removed and much added here: insert a piece
                // (at least one byte, so the walk goes forward) and try
                // again after it; past the end of the base, the rest.
                let inserted = match b < base.len() {
                    true => (new.len() - n).clamp(1, NEAR),
                    false => new.len() - n,
                };
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
/// again: `Some((bytes of new to insert, base offset to resume copying
/// at))`, the resumed offset being past `b` or the insert non-empty;
/// `Some(None)` if nowhere [`SEARCHES`] look; `None` when `budget` (see
/// [`encode`]) runs out.
fn resync(
    base: &[u8],
    b: usize,
    new: &[u8],
    n: usize,
    budget: &mut usize,
) -> Option<Option<(usize, usize)>> {
    let rest = new.len() - n;
    if rest < ANCHOR || b >= base.len() {
        return Some(None);
    }
    for search in SEARCHES {
        // From one step in: new[n] itself differs, and a match found past
        // it is extended back (an insert as short as the change, a skip
        // of what was removed).
        let mut k = search.first.min(rest - ANCHOR);
        while k <= search.last && k + ANCHOR <= rest {
            let end = (b + search.ahead + if search.grows { k } else { 0 }).min(base.len());
            let ahead = base.get(b..end).unwrap_or_default();
            *budget = budget.checked_sub(ahead.len() + SETUP)?;
            let wanted = &new[n + k..(n + k + AGREE).min(new.len())];
            if let Some(found) = place(base, b, ahead, wanted, k == 0, budget) {
                return Some(Some(back(base, b, new, n, k, b + found)));
            }
            if *budget == 0 {
                return None;
            }
            k += search.step;
        }
    }
    Some(None)
}

/// One way [`resync`] looks: anchors of new text from `first` to `last`
/// bytes past the difference, every `step` bytes, each looked for in the
/// `ahead` bytes of the base past it (plus the anchor's own distance when
/// `grows`).
struct Search {
    first: usize,
    last: usize,
    step: usize,
    ahead: usize,
    grows: bool,
}

/// Near places first (a version changed, a package or two added or
/// removed: ≈ 100 bytes each), then a large removal (an anchor just past
/// the difference, far in the base), then a large addition (anchors far in
/// the new text, near in the base). An anchor that is nowhere costs a
/// search of its whole window, so no search is both far and wide.
/// A sweep that finds nothing searches ≈ 100 KB in 270 anchors (≈ 170 KB
/// of the budget with their setups).
const SEARCHES: [Search; 3] = [
    Search {
        first: STEP,
        last: NEAR,
        step: STEP,
        ahead: 2 * NEAR,
        grows: true,
    },
    Search {
        first: STEP,
        last: 2 * STEP,
        step: STEP,
        ahead: WINDOW,
        grows: false,
    },
    Search {
        first: NEAR,
        last: WINDOW,
        step: 4 * STEP,
        ahead: NEAR,
        grows: false,
    },
];

/// Of the first places in `ahead` (the base from `b`) where `wanted`'s
/// anchor is, the one where the texts go on agreeing longest (a piece
/// such as `","section":"libs","size_kib"` is in most entries, a true
/// resynchronisation runs on to the next change): its offset in `ahead`.
/// The bytes compared are taken from `budget` (down to 0): a text whose
/// anchors are in many places costs more than its windows.
fn place(
    base: &[u8],
    b: usize,
    ahead: &[u8],
    wanted: &[u8],
    at_difference: bool,
    budget: &mut usize,
) -> Option<usize> {
    let mut best = None;
    for found in memchr::memmem::find_iter(ahead, &wanted[..ANCHOR]).take(CANDIDATES) {
        // At the difference itself, the base's first byte is not it.
        if at_difference && found == 0 {
            continue;
        }
        let agree = common_prefix(&base[b + found..], wanted);
        *budget = budget.saturating_sub(agree);
        if agree == wanted.len() || b + found + agree == base.len() {
            return Some(found);
        }
        if best.is_none_or(|(longest, _)| agree > longest) {
            best = Some((agree, found));
        }
    }
    best.filter(|&(agree, _)| agree >= MIN_AGREE)
        .map(|(_, found)| found)
}

/// A match of `new[n + k..]` at `base[at..]` extended backwards while the
/// bytes before agree, not before `n` and `b`: `(k, at)` moved back.
fn back(base: &[u8], b: usize, new: &[u8], n: usize, k: usize, at: usize) -> (usize, usize) {
    let mut back = 0;
    while back < k && back < at - b && new[n + k - back - 1] == base[at - back - 1] {
        back += 1;
    }
    (k - back, at - back)
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

    /// The script's length; `None` if the encoder gave up (its search
    /// budget spent: texts too unlike each other).
    fn try_round_trip(base: &[u8], new: &[u8]) -> Option<usize> {
        let script = encode(base, new, usize::MAX)?;
        assert_eq!(apply(base, &script, usize::MAX).unwrap(), new);
        Some(script.len())
    }

    fn round_trip(base: &[u8], new: &[u8]) -> usize {
        try_round_trip(base, new).expect("texts alike enough")
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
            try_round_trip(base, new);
        }
        // Alike enough: a script, however long.
        assert!(try_round_trip(&a, &a[a.len() / 2..]).is_some());
        assert!(try_round_trip(&[], &a).is_some());
        // Nothing in common: the search gives up.
        assert!(try_round_trip(&b, &a).is_none());
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
        // Edits as a list has them (bytes removed, bytes added): always a
        // script. With pieces of the base moved elsewhere (which sorted
        // lists do not have), the encoder may give up; what it writes
        // still rebuilds the text.
        for moves in [false, true] {
            let mut gave_up = 0;
            for _ in 0..300 {
                let mut new = base.clone();
                for _ in 0..next(12) {
                    let at = next(new.len().max(1));
                    match next(if moves { 3 } else { 2 }) {
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
                            let from = next(base.len());
                            let end = (from + next(500)).min(base.len());
                            new.splice(at..at, base[from..end].iter().copied());
                        }
                    }
                }
                if try_round_trip(&base, &new).is_none() {
                    gave_up += 1;
                }
            }
            if !moves {
                assert_eq!(gave_up, 0);
            }
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
