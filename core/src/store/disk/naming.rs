//! How a [`DiskStore`](super::DiskStore) names its files: fastmcp TS's names (shared between colliding keys, so
//! such a file records its key) or percent-encoded safe names, hashed when too long for the file system.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Everything but `[A-Za-z0-9_-]` is percent-encoded.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-');
/// Longest file name most filesystems accept.
pub(super) const MAX_NAME: usize = 255;
/// Room kept for the temp and claim suffixes (`.` + 16 hex + `.claim`/`.tmp`).
const SUFFIX_ROOM: usize = 24;

/// How a [`DiskStore`](super::DiskStore) names its files. Either naming reads the other's files.
///
/// The default is [`FileNaming::Fastmcp`]: a directory shared with fastmcp TS (a mixed fleet, a rollback) must be
/// readable by it, and the collision guard keeps fastmcp's weakness (keys sharing a name overwrite each other)
/// out. It costs one extra read on a save of a key outside `[A-Za-z0-9_-]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileNaming {
    /// Plain keys keep fastmcp's name, other keys are percent-encoded: injective, no two keys ever share a file.
    /// fastmcp TS cannot find the files of non-plain keys (it looks for `mapping_abc.json`).
    Safe,
    /// fastmcp's own names (every character outside `[A-Za-z0-9_-]` becomes `_`), so fastmcp TS reads the
    /// directory too. A file whose name another key could share records its key; a key whose fastmcp name already
    /// holds *another* recorded key is written under its safe name instead, so colliding keys never overwrite
    /// each other (fastmcp's own DiskStore would).
    #[default]
    Fastmcp,
}

/// Where a key lives.
pub(super) struct Names {
    /// Our file name for the key.
    pub(super) own: String,
    /// Whether our file records the key.
    pub(super) records_key: bool,
    /// fastmcp's name for the key, when it differs from ours.
    pub(super) legacy: Option<String>,
}

fn is_plain(key: &str) -> bool {
    key.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// fastmcp's file name for `key`: every character outside `[A-Za-z0-9_-]` becomes `_`.
pub(super) fn legacy_file_name(key: &str, ext: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.push_str(ext);
    s
}

/// Where `key` lives in a directory of `ext` files named the `naming` way.
pub(super) fn names(key: &str, ext: &str, naming: FileNaming) -> Names {
    let plain = is_plain(key);
    let stem: String = if plain {
        key.to_owned()
    } else {
        utf8_percent_encode(key, ENCODE).collect()
    };
    let (stem, hashed) = if stem.len() + ext.len() + SUFFIX_ROOM > MAX_NAME {
        (format!("~{}", hex::encode(Sha256::digest(key.as_bytes()))), true)
    } else {
        (stem, false)
    };
    let own = format!("{stem}{ext}");
    let records_key = hashed || (plain && key.contains('_'));
    let legacy = if plain && !hashed {
        // A plain key with `_` shares its name with fastmcp-named keys (`a:b` → `a_b`); when a fastmcp-named
        // file already holds another key there, this key is written under its hashed name instead.
        key.contains('_')
            .then(|| format!("~{}{ext}", hex::encode(Sha256::digest(key.as_bytes()))))
    } else {
        Some(legacy_file_name(key, ext))
    };
    // fastmcp would itself fail on a legacy name over the limit; never look those up.
    let legacy = legacy.filter(|l| l.len() <= MAX_NAME && *l != own);
    match (naming, legacy) {
        // fastmcp's name first (recording the key, which that name alone does not identify); the safe name is
        // where the key goes when another key holds that name, and where a Safe-mode store put it.
        (FileNaming::Fastmcp, Some(fastmcp_name)) if !plain => Names {
            own: fastmcp_name,
            records_key: true,
            legacy: Some(own),
        },
        (_, legacy) => Names {
            own,
            records_key,
            legacy,
        },
    }
}
