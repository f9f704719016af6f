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

/// Largest entry a read that never waits answers in place ([`SyncStore::get_nowait`](crate::store::SyncStore::get_nowait)
/// on a DiskStore; a proxy record is a few KiB); a larger one is declined, and read on a thread that may block.
pub const MAX_NOWAIT_BYTES: u64 = 64 * 1024;

/// [`read_entry_file`] without ever waiting on the device, for callers that must not block (an event loop):
/// `openat2` with `RESOLVE_CACHED` (Linux 5.12) resolves the path only from the kernel's dentry cache, and
/// `preadv2` with `RWF_NOWAIT` (Linux 4.14) reads only what is in the page cache. `Err` of kind `WouldBlock`
/// when either would have to wait, or when the kernel or a seccomp filter does not offer them (then never tried
/// again in this process): the caller reads on a thread that may block instead. Same checks as
/// [`open_entry_file`]: no symlink, no FIFO or device, no file over [`MAX_ENTRY_BYTES`].
#[cfg(target_os = "linux")]
pub(super) fn read_entry_file_nowait(
    path: &Path,
) -> std::io::Result<std::result::Result<Vec<u8>, &'static str>> {
    use rustix::fs::{openat2, FileType, Mode, OFlags, ResolveFlags, CWD};
    use rustix::io::{preadv2, Errno, ReadWriteFlags};
    use std::io::{Error as IoError, ErrorKind, IoSliceMut};
    use std::sync::atomic::{AtomicBool, Ordering};
    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);
    let would_block = || IoError::from(ErrorKind::WouldBlock);
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return Err(would_block());
    }
    let unsupported = || {
        UNSUPPORTED.store(true, Ordering::Relaxed);
        would_block()
    };
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match openat2(CWD, path, flags, Mode::empty(), ResolveFlags::CACHED) {
        Ok(fd) => fd,
        Err(Errno::AGAIN) => return Err(would_block()),
        Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::OPNOTSUPP) => return Err(unsupported()),
        Err(Errno::LOOP) => return Ok(Err("a symbolic link")),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(Err("not a regular file"));
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if size > MAX_ENTRY_BYTES {
        return Ok(Err("larger than the entry size limit"));
    }
    if size > MAX_NOWAIT_BYTES {
        // Cached or not, copying and parsing it would hold the caller (an event loop) for milliseconds.
        return Err(would_block());
    }
    // One byte more than the size found, to notice a file that grew since (read on until the end or the limit).
    let mut bytes = vec![0u8; size as usize + 1];
    let mut filled = 0usize;
    // A file system that keeps files in memory (tmpfs, ramfs) has no RWF_NOWAIT (EOPNOTSUPP) and nothing to wait
    // on either: its reads are plain reads.
    let mut in_memory = false;
    loop {
        if filled == bytes.len() {
            if bytes.len() as u64 > MAX_ENTRY_BYTES {
                return Ok(Err("larger than the entry size limit"));
            }
            bytes.resize((bytes.len() * 2).min(MAX_ENTRY_BYTES as usize + 1), 0);
        }
        let flags = if in_memory {
            ReadWriteFlags::empty()
        } else {
            ReadWriteFlags::NOWAIT
        };
        let n = match preadv2(
            &fd,
            &mut [IoSliceMut::new(&mut bytes[filled..])],
            filled as u64,
            flags,
        ) {
            Ok(n) => n,
            Err(Errno::OPNOTSUPP) if !in_memory && kept_in_memory(&fd) => {
                in_memory = true;
                continue;
            }
            // Not in the page cache, or no RWF_NOWAIT on this file system (a property of the file system).
            Err(Errno::AGAIN | Errno::OPNOTSUPP) => return Err(would_block()),
            Err(Errno::NOSYS | Errno::INVAL) => return Err(unsupported()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        filled += n;
    }
    bytes.truncate(filled);
    Ok(Ok(bytes))
}

/// Whether `fd` is on tmpfs or ramfs, whose files live in memory (`fstatfs`).
#[cfg(target_os = "linux")]
fn kept_in_memory(fd: &std::os::fd::OwnedFd) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    rustix::fs::fstatfs(fd).is_ok_and(|s| matches!(s.f_type as u64, TMPFS_MAGIC | RAMFS_MAGIC))
}

/// Elsewhere the non-blocking read is not tried: every read goes to a thread that may block.
#[cfg(not(target_os = "linux"))]
pub(super) fn read_entry_file_nowait(
    _path: &Path,
) -> std::io::Result<std::result::Result<Vec<u8>, &'static str>> {
    Err(std::io::ErrorKind::WouldBlock.into())
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
