//! [`Store::replace`](crate::store::Store::replace) for [`DiskStore`](super::DiskStore): compare-and-swap of one
//! entry file by an atomic exchange of files (`renameat2(RENAME_EXCHANGE)`), used by `store::rekey` while servers
//! keep writing.

use std::fs::{self, File};
use std::io::ErrorKind;

use serde_json::Value;

use super::{random_suffix, read_entry_file, EntryIn, EntryOut, Inner};
use crate::error::{Error, Result};
use crate::store::{fingerprint, now_ms, validate_key, Replaced};

impl Inner {
    /// The bytes and entry of file `name`; `None` when it is missing or not a readable entry.
    fn read_raw(&self, name: &str) -> Result<Option<(Vec<u8>, EntryIn)>> {
        match read_entry_file(&self.path(name)) {
            Ok(Ok(bytes)) => Ok(serde_json::from_slice::<EntryIn>(&bytes).ok().map(|e| (bytes, e))),
            Ok(Err(_)) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read entry", e)),
        }
    }

    /// [`Store::replace`]. The new entry (same expiry, same recorded key) is written to a temp file that is then
    /// swapped with the key's file in one step (`renameat2(RENAME_EXCHANGE)`): readers always find a whole entry,
    /// and the temp name then holds exactly what was displaced. If that is not what was read, another writer got
    /// in between, and its file is swapped back; should yet another write land meanwhile, that one is (each swap
    /// checks that it displaced what the previous one put there). A `take` or `delete` meanwhile makes the swap
    /// fail (nothing to swap with), so a removed entry is never brought back.
    #[cfg(target_os = "linux")]
    pub(super) fn replace(&self, key: &str, expected: &Value, new: &Value) -> Result<Option<Replaced>> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        self.check_open()?;
        validate_key(key)?;
        let names = self.names(key);
        // A file's identity: device, inode and change time (rename and exchange keep the inode and bump ctime only
        // on the renamed file itself; a new write is a new inode).
        let identity = |name: &str| {
            use std::os::unix::fs::MetadataExt;
            fs::symlink_metadata(self.path(name))
                .ok()
                .map(|m| (m.dev(), m.ino(), m.ctime(), m.ctime_nsec()))
        };
        let mut found = None;
        let own_before = identity(&names.own);
        if let Some((bytes, e)) = self.read_raw(&names.own)? {
            if Self::owns(&e, key, &names) {
                found = Some((names.own.clone(), bytes, e));
            }
        }
        if found.is_none() {
            if let Some(l) = &names.legacy {
                if let Some((bytes, e)) = self.read_raw(l)? {
                    if Self::other_holds(&e, key) {
                        found = Some((l.clone(), bytes, e));
                    }
                }
            }
        }
        let Some((name, read_bytes, entry)) = found else {
            return Ok(Some(Replaced::Absent));
        };
        // The identity of the file read, taken before and after reading: a replacement in between is a change.
        let read_identity = if name == names.own {
            own_before
        } else {
            identity(&name)
        };
        if read_identity.is_none() || identity(&name) != read_identity {
            return Ok(Some(Replaced::Changed));
        }
        if entry.expires_at < now_ms() as f64 {
            return Ok(Some(Replaced::Absent));
        }
        if entry.value != *expected {
            return Ok(Some(Replaced::Changed));
        }
        let content = serde_json::to_vec_pretty(&EntryOut {
            expires_at: entry.expires_at as u64,
            value: new,
            key: entry.key.as_deref(),
        })?;
        let tmp = self.path(&format!(".{name}.{}.tmp", random_suffix()));
        let target = self.path(&name);
        let write = || self.write_new_file(&tmp, &content);
        let cleanup = |r: Result<Option<Replaced>>| {
            let _ = fs::remove_file(&tmp);
            r
        };
        if let Err(e) = write() {
            return cleanup(Err(Error::io("write entry", e)));
        }
        let exchange = || renameat_with(CWD, &tmp, CWD, &target, RenameFlags::EXCHANGE);
        // Last look before the swap: if a writer replaced the file since it was read, leave it be. (What remains is
        // the instant between this look and the swap; a write landing there is restored just below, and is visible
        // as the older value only for that long.)
        if identity(&name) != read_identity {
            return cleanup(Ok(Some(Replaced::Changed)));
        }
        match exchange() {
            Ok(()) => {}
            Err(Errno::NOENT) => return cleanup(Ok(Some(Replaced::Absent))),
            // The filesystem cannot swap files atomically: say so rather than risk overwriting a writer's value.
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => return cleanup(Ok(None)),
            Err(e) => return cleanup(Err(Error::io("exchange entry", e.into()))),
        }
        // On a read failure after a swap, the temp file may hold another writer's entry: it is left in place (for
        // inspection; the hourly scan removes it) rather than deleted.
        let read_tmp = || fs::read(&tmp).map_err(|e| Error::io("read displaced entry", e));
        let mut holding = read_tmp()?;
        if holding == read_bytes {
            if self.fsync {
                File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| Error::io("fsync directory", e))?;
            }
            return cleanup(Ok(Some(Replaced::Replaced)));
        }
        // A writer got in between: its (newer) file is in `tmp`, ours in place. Swap back until what is displaced
        // is what was put there last.
        let mut last_put = content;
        for _ in 0..32 {
            match exchange() {
                Ok(()) => {}
                Err(Errno::NOENT) => {
                    // Taken or deleted after our swap (whoever removed it got the older value): the newer write we
                    // hold goes back under the name, unless yet another write took the name meanwhile.
                    match fs::hard_link(&tmp, &target) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                        Err(e) => {
                            tracing::warn!(error = %e, file = %fingerprint(&name), "DiskStore: could not restore an entry written during a replace");
                        }
                    }
                    return cleanup(Ok(Some(Replaced::Changed)));
                }
                Err(e) => return cleanup(Err(Error::io("exchange entry", e.into()))),
            }
            let displaced = read_tmp()?;
            if displaced == last_put {
                return cleanup(Ok(Some(Replaced::Changed)));
            }
            last_put = std::mem::replace(&mut holding, displaced);
        }
        tracing::warn!(file = %fingerprint(&name), "DiskStore: gave up restoring an entry under 32 concurrent writes");
        cleanup(Ok(Some(Replaced::Changed)))
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn replace(&self, _key: &str, _expected: &Value, _new: &Value) -> Result<Option<Replaced>> {
        Ok(None)
    }
}
