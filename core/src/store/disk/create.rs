//! Creating an entry's file: an unnamed file (`O_TMPFILE`, a spare made ahead when there is one, `spare.rs`)
//! written and then linked under its name, or a new file at a temp name that the caller renames into place.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[cfg(target_os = "linux")]
use super::spare;
use super::Inner;
use crate::error::{Error, Result};

impl Inner {
    /// Creates a *new* entry file complete in one directory operation: the content goes into an unnamed file,
    /// which is then linked under `target`; readers never see a partial file, and there is no temp name to create
    /// and rename. `Ok(false)`: the name exists after all, or the file system (or a missing /proc) does not allow
    /// it; the caller then writes a temp file and renames it.
    #[cfg(target_os = "linux")]
    pub(super) fn create_linked(&self, target: &Path, content: &[u8]) -> Result<bool> {
        use rustix::fs::{openat, Mode, OFlags, CWD};
        use rustix::io::Errno;
        let fd = match self.take_spare() {
            Some(fd) => fd,
            None => match openat(
                CWD,
                &self.dir,
                OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => fd,
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => return Ok(false),
                Err(e) => return Err(Error::io("write entry", e.into())),
            },
        };
        let mut f = File::from(fd);
        self.fill(&mut f, content)
            .map_err(|e| Error::io("write entry", e))?;
        match spare::link_unnamed(&f, target) {
            Ok(()) => Ok(true),
            Err(Errno::EXIST | Errno::NOENT | Errno::XDEV | Errno::PERM | Errno::ACCESS) => Ok(false),
            Err(e) => Err(Error::io("link entry", e.into())),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn create_linked(&self, _target: &Path, _content: &[u8]) -> Result<bool> {
        Ok(false)
    }

    #[cfg(target_os = "linux")]
    fn take_spare(&self) -> Option<std::os::fd::OwnedFd> {
        self.spares
            .take(|| self.me.clone() as std::sync::Weak<dyn spare::Refill>)
    }

    /// Writes `content` to a new file at `path` (0600, never an existing file), synced when `fsync` is on. With a
    /// spare unnamed file at hand (Linux), that file is written and linked at `path`: no inode to allocate now.
    pub(super) fn write_new_file(&self, path: &Path, content: &[u8]) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(fd) = self.take_spare() {
            let mut f = File::from(fd);
            self.fill(&mut f, content)?;
            match spare::link_unnamed(&f, path) {
                Ok(()) => return Ok(()),
                // Another file system under the name now (the directory was replaced), or /proc missing: as
                // without a spare.
                Err(rustix::io::Errno::XDEV | rustix::io::Errno::NOENT | rustix::io::Errno::PERM) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        self.fill(&mut f, content)
    }

    /// Writes a new file's whole content, synced when `fsync` is on.
    fn fill(&self, f: &mut File, content: &[u8]) -> std::io::Result<()> {
        f.write_all(content)?;
        if self.fsync {
            f.sync_all()?;
        }
        Ok(())
    }
}
