//! Large in-progress transactions that the server streams before they commit (pgoutput
//! protocol 2, `streaming 'on'`; docs: "Logical Streaming Replication Protocol", Stream Start /
//! Stop / Commit / Abort). Their messages wait in a file per transaction until Stream Commit,
//! so memory does not grow with transaction size; Stream Abort discards the file, or marks one
//! subtransaction whose messages are then skipped.
//!
//! The files hold row data, so they live in a directory of our own that nobody else can
//! read, prepare or swap: `$TMPDIR/zetl-spill-<integration>-<random>`, mode 0700, made by a
//! single mkdir that fails if anything is already there.

use crate::error::PgError;
use std::collections::{HashMap, HashSet};
use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Hex digits of the random part of a spill directory's name (8 random bytes).
const RANDOM_HEX: usize = 16;

pub struct Spill {
    dir: PathBuf,
    files: HashMap<u32, SpillFile>,
    /// `LOCK` in `dir`, locked while this process lives: another run of an integration of the
    /// same name (another config file, another project on the host) leaves the directory be.
    lock: Option<File>,
}

/// The lock file in a spill directory.
const LOCK: &str = ".lock";

/// A directory without a lock file this young may be one whose run is about to lock it.
const UNLOCKED_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

struct SpillFile {
    path: PathBuf,
    writer: BufWriter<File>,
    aborted: HashSet<u32>,
}

impl Spill {
    /// A new private directory under `parent` (normally `$TMPDIR`) for `integration`'s large
    /// transactions. Directories that earlier runs of the integration left behind (killed
    /// before they could remove them) are removed: after a reconnect the server streams open
    /// transactions again from their start, so nothing spilled before is still needed.
    pub fn create(parent: &Path, integration: &str) -> Result<Spill, PgError> {
        let prefix = format!("zetl-spill-{integration}-");
        let mut attempts = 0;
        let spill = loop {
            let spill = Spill::create_dir(parent.join(format!("{prefix}{}", random_hex()?)))?;
            attempts += 1;
            // Another run of the same name, starting in the moment between our lock file's
            // creation and its lock, may have taken the directory for one left behind.
            if spill.still_ours() || attempts == 3 {
                break spill;
            }
            tracing::debug!(dir = %spill.dir.display(), "the new spill directory was removed by another run; making another");
        };
        let ours = std::fs::symlink_metadata(&spill.dir).map(|m| m.uid()).map_err(|e| spill.error(e.to_string()))?;
        remove_left_behind(parent, &prefix, &spill.dir, ours);
        Ok(spill)
    }

    /// Whether the lock file in our directory is still the one this process holds locked.
    fn still_ours(&self) -> bool {
        let held = self.lock.as_ref().and_then(|f| f.metadata().ok()).map(|m| (m.dev(), m.ino()));
        let there = std::fs::metadata(self.dir.join(LOCK)).ok().map(|m| (m.dev(), m.ino()));
        held.is_some() && held == there
    }

    /// Makes `dir` (it must not exist) with mode 0700 and checks what was made.
    fn create_dir(dir: PathBuf) -> Result<Spill, PgError> {
        let error = |reason: String| PgError::SpillDir { dir: dir.display().to_string(), reason };
        DirBuilder::new().mode(0o700).create(&dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                error("it exists already, and zetl only uses a directory it has just made itself".into())
            }
            _ => error(format!("{e} (set TMPDIR to a writable directory with room for the largest transaction)")),
        })?;
        // mkdir applies the umask, which can only take permissions away; set them exactly.
        let mut spill = Spill { dir, files: HashMap::new(), lock: None };
        std::fs::set_permissions(&spill.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| spill.error(e.to_string()))?;
        let meta = std::fs::symlink_metadata(&spill.dir).map_err(|e| spill.error(e.to_string()))?;
        // Made by us a moment ago, so ours: what matters is that it is a directory, 0700.
        private(&meta, meta.uid()).map_err(|problem| spill.error(problem.into()))?;
        let lock = OpenOptions::new().write(true).create_new(true).mode(0o600).open(spill.dir.join(LOCK));
        let lock = lock.map_err(|e| spill.error(e.to_string()))?;
        lock.lock().map_err(|e| spill.error(format!("cannot lock {LOCK}: {e}")))?;
        spill.lock = Some(lock);
        Ok(spill)
    }

    fn error(&self, reason: String) -> PgError {
        PgError::SpillDir { dir: self.dir.display().to_string(), reason }
    }

    /// A file of the directory could not be written or read back (a full disk): nothing of the
    /// transaction was acknowledged, so the server sends it again after a restart.
    pub fn io_error(&self, e: std::io::Error) -> PgError {
        let hint = if e.kind() == std::io::ErrorKind::StorageFull {
            "; free space there, or set TMPDIR to a directory with room for the largest source transaction"
        } else {
            ""
        };
        self.error(format!("{e}{hint}"))
    }

    /// Appends one message of transaction `xid` (sent by subtransaction `subxid`).
    pub fn append(&mut self, xid: u32, subxid: u32, message: &[u8]) -> std::io::Result<()> {
        let file = match self.files.get_mut(&xid) {
            Some(f) => f,
            None => {
                let path = self.dir.join(format!("{xid}.spill"));
                let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
                let writer = BufWriter::with_capacity(1 << 20, file);
                self.files.entry(xid).or_insert(SpillFile { path, writer, aborted: HashSet::new() })
            }
        };
        file.writer.write_all(&subxid.to_le_bytes())?;
        file.writer.write_all(&(message.len() as u32).to_le_bytes())?;
        file.writer.write_all(message)
    }

    pub fn abort(&mut self, xid: u32, subxid: u32) -> std::io::Result<()> {
        if xid == subxid {
            if let Some(f) = self.files.remove(&xid) {
                drop(f.writer);
                std::fs::remove_file(&f.path)?;
            }
        } else if let Some(f) = self.files.get_mut(&xid) {
            f.aborted.insert(subxid);
        }
        Ok(())
    }

    /// The committed transaction's messages in order, without aborted subtransactions'.
    /// `None` when nothing of it was spilled.
    pub fn take(&mut self, xid: u32) -> std::io::Result<Option<SpillReader>> {
        let Some(f) = self.files.remove(&xid) else {
            return Ok(None);
        };
        let path = f.path.clone();
        f.writer.into_inner().map_err(|e| e.into_error())?.sync_data().ok();
        let reader = BufReader::with_capacity(1 << 20, File::open(&path)?);
        Ok(Some(SpillReader { path, reader, aborted: f.aborted }))
    }
}

/// Why a directory is not private to the user `uid`, if it is not.
fn private(meta: &Metadata, uid: u32) -> Result<(), &'static str> {
    if !meta.file_type().is_dir() {
        return Err("it is not a directory (a symbolic link?)");
    }
    if meta.uid() != uid {
        return Err("it belongs to another user");
    }
    if meta.mode() & 0o077 != 0 {
        return Err("other users have access to it (it must be mode 0700)");
    }
    Ok(())
}

fn random_hex() -> Result<String, PgError> {
    let mut bytes = [0u8; RANDOM_HEX / 2];
    rustls::crypto::ring::default_provider().secure_random.fill(&mut bytes).map_err(|_| PgError::SpillDir {
        dir: std::env::temp_dir().display().to_string(),
        reason: "the system has no random numbers for a directory name".into(),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Removes spill directories of earlier runs: the integration's name and a random part, and
/// private to us. Anything else there is left alone.
fn remove_left_behind(parent: &Path, prefix: &str, current: &Path, uid: u32) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(random) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let path = entry.path();
        if random.len() != RANDOM_HEX || !random.bytes().all(|b| b.is_ascii_hexdigit()) || path == current {
            continue;
        }
        let removable = entry.metadata().is_ok_and(|m| private(&m, uid).is_ok() && !in_use(&path, &m));
        if removable && std::fs::remove_dir_all(&path).is_ok() {
            tracing::info!(dir = %path.display(), "removed large-transaction files an earlier run left behind");
        }
    }
}

/// Whether a live process uses the spill directory `dir`: its lock file is locked, or it has
/// none yet and was made a moment ago.
fn in_use(dir: &Path, meta: &Metadata) -> bool {
    match File::open(dir.join(LOCK)) {
        Ok(lock) => matches!(lock.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => meta.modified().ok().and_then(|t| t.elapsed().ok()).is_none_or(|age| age < UNLOCKED_GRACE),
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        self.files.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct SpillReader {
    path: PathBuf,
    reader: BufReader<File>,
    aborted: HashSet<u32>,
}

impl SpillReader {
    pub fn next_message(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            let mut head = [0u8; 8];
            match self.reader.read_exact(&mut head) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            let subxid = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
            let mut message = vec![0u8; len];
            self.reader.read_exact(&mut message)?;
            if !self.aborted.contains(&subxid) {
                return Ok(Some(message));
            }
        }
    }
}

impl Drop for SpillReader {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parent directory of the test's own.
    fn parent(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("zetl-spill-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("parent");
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).expect("metadata").mode() & 0o777
    }

    #[test]
    fn a_directory_taken_away_before_its_lock_is_noticed() {
        let parent = parent("taken");
        let spill = Spill::create(&parent, "shop").expect("spill");
        assert!(spill.still_ours());
        // Another run removed it as left behind, and the name was made again.
        std::fs::remove_dir_all(&spill.dir).expect("remove");
        std::fs::create_dir(&spill.dir).expect("again");
        std::fs::write(spill.dir.join(LOCK), b"").expect("another lock file");
        assert!(!spill.still_ours());
        drop(spill);
        let _ = std::fs::remove_dir_all(&parent);
    }

    #[test]
    fn directory_is_private_unpredictable_and_new() {
        let parent = parent("private");
        let first = Spill::create(&parent, "shop").expect("spill");
        let name = first.dir.file_name().and_then(|n| n.to_str()).expect("name").to_string();
        let random = name.strip_prefix("zetl-spill-shop-").expect("prefix");
        assert!(random.len() == RANDOM_HEX && random.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
        assert_eq!(mode(&first.dir), 0o700);
        let mut spill = first;
        spill.append(1, 1, b"row").expect("write");
        assert_eq!(mode(&spill.dir.join("1.spill")), 0o600);

        // A second start gets another name, and clears what the first left behind (it was
        // killed), but not a directory of another integration or one that is not private.
        let other = Spill::create(&parent, "shop-eu").expect("other integration");
        let loose = parent.join(format!("zetl-spill-shop-{}", "0".repeat(RANDOM_HEX)));
        std::fs::create_dir(&loose).expect("loose");
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let left = spill.dir.clone();
        // Killed: its lock is gone with the process, its directory stays.
        spill.lock.take().map(|l| l.unlock()).transpose().expect("unlock");
        std::mem::forget(spill);
        let live = Spill::create(&parent, "shop").expect("spill");
        assert_ne!(live.dir, left);
        assert!(!left.exists() && other.dir.exists() && loose.exists());
        // A run alive beside it (the same integration name elsewhere) keeps its directory.
        let second = Spill::create(&parent, "shop").expect("spill");
        assert!(live.dir.exists() && live.dir.join(LOCK).exists(), "a live run's directory was removed");
        drop((second, live, other));
        let _ = std::fs::remove_dir_all(parent);
    }

    #[test]
    fn refuses_a_directory_it_did_not_make_or_that_is_not_private() {
        let parent = parent("refuse");
        let existing = parent.join("zetl-spill-x-prepared");
        std::fs::create_dir(&existing).expect("dir");
        let msg = Spill::create_dir(existing.clone()).err().expect("refused").to_string();
        assert!(msg.contains("it exists already"), "{msg}");
        let meta = |p: &Path| std::fs::symlink_metadata(p).expect("metadata");
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        let uid = meta(&existing).uid();
        assert_eq!(private(&meta(&existing), uid), Err("other users have access to it (it must be mode 0700)"));
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        assert_eq!(private(&meta(&existing), uid), Ok(()));
        assert_eq!(private(&meta(&existing), uid.wrapping_add(1)), Err("it belongs to another user"));
        let link = parent.join("link");
        std::os::unix::fs::symlink(&existing, &link).expect("symlink");
        assert!(private(&meta(&link), uid).is_err());
        let _ = std::fs::remove_dir_all(parent);
    }

    #[test]
    fn keeps_order_and_drops_aborted_subtransactions() {
        let parent = parent("order");
        let mut spill = Spill::create(&parent, "t").expect("dir");
        spill.append(7, 7, b"a").expect("write");
        spill.append(7, 8, b"b").expect("write");
        spill.append(9, 9, b"x").expect("write");
        spill.append(7, 7, b"c").expect("write");
        spill.abort(7, 8).expect("sub abort");
        spill.abort(9, 9).expect("abort");
        let mut r = spill.take(7).expect("take").expect("spilled");
        let mut got = Vec::new();
        while let Some(m) = r.next_message().expect("read") {
            got.push(m);
        }
        assert_eq!(got, vec![b"a".to_vec(), b"c".to_vec()]);
        assert!(spill.take(9).expect("take").is_none());
        drop((r, spill));
        let _ = std::fs::remove_dir_all(parent);
    }
}
