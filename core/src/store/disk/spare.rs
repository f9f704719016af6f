//! Unnamed files made ahead of need, so that creating an entry skips the inode allocation.
//!
//! A new entry is an unnamed file (`O_TMPFILE`) linked under its name once written (`create_linked`). Making the
//! unnamed file — allocating an inode — is most of a new entry's kernel time: ~40 µs of ~60 on this VM's ext4,
//! more after many deletions (ext4 without a journal skips recently freed inodes one inode-table block at a time).
//! A store that creates entries keeps up to [`SPARES`] such files open, made by a thread with nothing else to do
//! ([`prepare_ahead`]), and takes one when it creates an entry.
//!
//! Only faces with such a thread turn this on ([`enable`]): the Python binding's job drainers, between jobs.
//! Elsewhere nothing changes (no file is made ahead, none is held).
//!
//! Safety of a spare:
//! - used once, by the one caller that took it out of the list, then closed;
//! - used only by the process and effective user that made it: after a `fork` the child shares the parent's open
//!   files, and two processes writing and linking one inode would give two keys one file; a spare made before a
//!   change of user would be owned by the old one;
//! - nothing is lost in a crash: an unnamed file is freed by the kernel when its last descriptor closes (or by
//!   fsck after a power loss).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};

/// At most this many spare files per store.
pub(super) const SPARES: usize = 2;

/// At most this many spare files in the process (each is an open descriptor: a process with hundreds of stores
/// must not run out of them for its sockets).
pub(super) const MAX_SPARES: usize = 32;

/// The process that turned spares on ([`enable`]), 0 before. A forked child has another pid: it never touches
/// the spare lists, whose locks a thread of its parent (that the child does not have) may have held at the fork.
static ENABLED_BY: AtomicU32 = AtomicU32::new(0);

/// Spare files held in the process.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// Stores that took a spare (or found none) since their list was last filled.
static WANTED: Mutex<Vec<Weak<dyn Refill>>> = Mutex::new(Vec::new());

/// What [`prepare_ahead`] asks of a store.
pub(super) trait Refill: Send + Sync {
    /// Makes one spare file if the store has fewer than [`SPARES`]; whether there is more to make.
    fn refill_one(&self) -> RefillOutcome;
}

pub(super) enum RefillOutcome {
    /// One made, the list is still short.
    More,
    /// The list is full (or the store is closed, or cannot have spares).
    Done,
}

/// Lets stores keep spare files, made by whoever calls [`prepare_ahead`] in this process. Cannot be undone (stores
/// keep working either way).
pub fn enable() {
    ENABLED_BY.store(std::process::id(), Ordering::Relaxed);
}

fn enabled() -> bool {
    let by = ENABLED_BY.load(Ordering::Relaxed);
    by != 0 && by == std::process::id()
}

/// Makes one spare file for a store that wants one; `false` when none does. For a thread that is idle and may
/// block for a few tens of µs (file system work at the caller's priority). Never fails: a file that cannot be
/// made is simply not there when wanted (the entry's file is then made as without spares).
pub fn prepare_ahead() -> bool {
    if !enabled() {
        return false;
    }
    loop {
        let Some(store) = WANTED.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
            return false;
        };
        let Some(store) = store.upgrade() else {
            continue;
        };
        match store.refill_one() {
            RefillOutcome::More => {
                WANTED
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(std::sync::Arc::downgrade(&store));
                return true;
            }
            RefillOutcome::Done => return true,
        }
    }
}

/// One store's spare files.
#[derive(Default)]
pub(super) struct Spares {
    files: Mutex<Vec<Spare>>,
    /// In [`WANTED`] (at most once); changed only under the `files` lock.
    queued: AtomicBool,
    /// `O_TMPFILE` failed for a reason that will not change (file system without it): stop trying.
    unsupported: AtomicBool,
}

/// A spare file (`None` once taken); dropping it gives its place in [`HELD`] back.
struct Spare {
    fd: Option<OwnedFd>,
}

impl Drop for Spare {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Spares {
    /// A spare of this store, if any, owned by this process's effective user and group; asks for a replacement
    /// either way (when enabled).
    pub(super) fn take(&self, owner: impl FnOnce() -> Weak<dyn Refill>) -> Option<OwnedFd> {
        if !enabled() || self.unsupported.load(Ordering::Relaxed) {
            return None;
        }
        let (spare, ask) = {
            let mut files = self.lock();
            (files.pop(), !self.queued.swap(true, Ordering::AcqRel))
        };
        if ask {
            let mut wanted = WANTED.lock().unwrap_or_else(|p| p.into_inner());
            if wanted.len() >= 64 {
                wanted.retain(|w| w.strong_count() > 0);
            }
            wanted.push(owner());
        }
        let fd = spare?.fd.take()?;
        // Made as this user? A change of user or group since (setuid, setgid) would otherwise give the entry the
        // old owner: the file's own owner is what counts, checked on the descriptor.
        let st = rustix::fs::fstat(&fd).ok()?;
        let mine = st.st_uid == rustix::process::geteuid().as_raw()
            && st.st_gid == rustix::process::getegid().as_raw();
        mine.then_some(fd)
    }

    /// Makes one spare in `dir` if there are fewer than [`SPARES`] (and fewer than [`MAX_SPARES`] in the process).
    pub(super) fn refill_one(&self, dir: &Path, closed: &AtomicBool) -> RefillOutcome {
        use rustix::fs::{openat, Mode, OFlags, CWD};
        use rustix::io::Errno;
        // `queued` changes under the `files` lock (as in `take`): a take in between cannot find it still set.
        let done = || {
            self.queued.store(false, Ordering::Release);
            RefillOutcome::Done
        };
        {
            let mut files = self.lock();
            if closed.load(Ordering::Acquire) || self.unsupported.load(Ordering::Relaxed) {
                files.clear();
                return done();
            }
            if files.len() >= SPARES || HELD.load(Ordering::Relaxed) >= MAX_SPARES {
                return done();
            }
        }
        let made = openat(
            CWD,
            dir,
            OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        );
        let mut files = self.lock();
        let fd = match made {
            Ok(fd) => fd,
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                self.unsupported.store(true, Ordering::Relaxed);
                return done();
            }
            // Directory gone, out of inodes or descriptors...: the entry's own creation reports it.
            Err(_) => return done(),
        };
        // Closed meanwhile: `close` cleared the list before this lock, so this one must not stay.
        if closed.load(Ordering::Acquire) {
            return done();
        }
        HELD.fetch_add(1, Ordering::Relaxed);
        files.push(Spare { fd: Some(fd) });
        if files.len() >= SPARES {
            done()
        } else {
            RefillOutcome::More
        }
    }

    /// Closes every spare (the store is closing; `closed` is set before).
    pub(super) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Spare>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Links the unnamed file `f` at `target`. Linking the descriptor itself (`AT_EMPTY_PATH`) skips resolving
/// `/proc/self/fd/N`; it takes `CAP_DAC_READ_SEARCH`, so without it (ENOENT or EPERM) the `/proc` path does it, and
/// is used from then on.
pub(super) fn link_unnamed(f: &File, target: &Path) -> rustix::io::Result<()> {
    use rustix::fs::{linkat, AtFlags, CWD};
    use rustix::io::Errno;
    static FLINK_REFUSED: AtomicBool = AtomicBool::new(false);
    if !FLINK_REFUSED.load(Ordering::Relaxed) {
        match linkat(f, "", CWD, target, AtFlags::EMPTY_PATH) {
            Err(Errno::PERM | Errno::NOENT) => {}
            done => return done,
        }
    }
    let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
    let linked = linkat(CWD, proc_path.as_str(), CWD, target, AtFlags::SYMLINK_FOLLOW);
    if linked.is_ok() {
        FLINK_REFUSED.store(true, Ordering::Relaxed);
    }
    linked
}
