//! What a DiskStore trusts on disk: entry files it could have written itself (never a link, a FIFO, a device or an
//! oversized file), in a directory only its owner can write.

use std::fs::{self, File, OpenOptions};
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest entry file read, in bytes (a proxy record is a few KiB; a value this large is not a token store's).
/// Larger files read as absent and are left in place, logged by fingerprint.
pub const MAX_ENTRY_BYTES: u64 = 16 * 1024 * 1024;

/// Opens an entry file only if it is what a store writes: never through a symlink (`O_NOFOLLOW`: a link cannot
/// lead a read out of the directory), never blocking (`O_NONBLOCK`: a FIFO named `*.json` cannot hang the
/// store), and only a regular file of at most [`MAX_ENTRY_BYTES`]. `Ok(Err(why))`: something else is there.
pub(super) fn open_entry_file(path: &Path) -> std::io::Result<std::result::Result<File, &'static str>> {
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    let f = match o.open(path) {
        Ok(f) => f,
        // ELOOP: the name is a symlink.
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(Err("a symbolic link")),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Ok(Err("not a regular file"));
    }
    if m.len() > MAX_ENTRY_BYTES {
        return Ok(Err("larger than the entry size limit"));
    }
    Ok(Ok(f))
}

/// The bytes of an entry file (see [`open_entry_file`]); never more than [`MAX_ENTRY_BYTES`], even if the file
/// grows while it is read.
pub(super) fn read_entry_file(path: &Path) -> std::io::Result<std::result::Result<Vec<u8>, &'static str>> {
    use std::io::Read as _;
    let f = match open_entry_file(path)? {
        Ok(f) => f,
        Err(why) => return Ok(Err(why)),
    };
    let mut bytes = Vec::new();
    f.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_ENTRY_BYTES {
        return Ok(Err("larger than the entry size limit"));
    }
    Ok(Ok(bytes))
}

/// Warns (or, with `strict_permissions`, refuses) when the directory is writable by others or owned by another
/// user (Linux), as ssh does for `~/.ssh`: whoever can write there can plant entries (sessions, registrations).
#[cfg(unix)]
pub(super) fn check_permissions(dir: &Path, strict: bool) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(dir).map_err(|e| Error::io("stat directory", e))?;
    #[cfg(target_os = "linux")]
    let foreign = m.uid() != rustix::process::geteuid().as_raw();
    #[cfg(not(target_os = "linux"))]
    let foreign = false;
    let problem = if m.mode() & 0o022 != 0 {
        Some("is writable by group or others")
    } else if foreign {
        Some("is owned by another user")
    } else {
        None
    };
    match problem {
        Some(p) if strict => Err(Error::InvalidArgument(format!(
            "DiskStore directory {p} (strict_permissions)"
        ))),
        Some(p) => {
            tracing::warn!("DiskStore: the directory {p}; anyone who can write there can plant entries");
            Ok(())
        }
        None => Ok(()),
    }
}

#[cfg(not(unix))]
pub(super) fn check_permissions(_dir: &Path, _strict: bool) -> Result<()> {
    Ok(())
}
