//! Large in-progress transactions that the server streams before they commit (pgoutput
//! protocol 2, `streaming 'on'`; docs: "Logical Streaming Replication Protocol", Stream Start /
//! Stop / Commit / Abort). Their messages wait in a file per transaction until Stream Commit,
//! so memory does not grow with transaction size; Stream Abort discards the file, or marks one
//! subtransaction whose messages are then skipped.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

pub struct Spill {
    dir: PathBuf,
    files: HashMap<u32, SpillFile>,
}

struct SpillFile {
    path: PathBuf,
    writer: BufWriter<File>,
    aborted: HashSet<u32>,
}

impl Spill {
    /// Uses (and empties) `dir`: after a reconnect the server streams open transactions again
    /// from their start, so nothing spilled before is still needed.
    pub fn new(dir: PathBuf) -> std::io::Result<Spill> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Spill { dir, files: HashMap::new() })
    }

    /// Appends one message of transaction `xid` (sent by subtransaction `subxid`).
    pub fn append(&mut self, xid: u32, subxid: u32, message: &[u8]) -> std::io::Result<()> {
        let file = match self.files.get_mut(&xid) {
            Some(f) => f,
            None => {
                let path = self.dir.join(format!("{xid}.spill"));
                let writer = BufWriter::with_capacity(1 << 20, File::create(&path)?);
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

    #[test]
    fn keeps_order_and_drops_aborted_subtransactions() {
        let dir = std::env::temp_dir().join(format!("zetl-spill-test-{}", std::process::id()));
        let mut spill = Spill::new(dir.clone()).expect("dir");
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
        drop(r);
        let _ = std::fs::remove_dir_all(dir);
    }
}
