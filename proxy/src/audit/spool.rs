//! The on-disk spool: audit records wait here until the control plane has
//! them. Every batch is one segment file, written to a temporary name,
//! fsynced and renamed, so a crash leaves whole segments or none. Segments
//! are named `<sequence>-<records>.jsonl` and sent oldest first.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A spool directory with a size cap.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    next_seq: Mutex<u64>,
    bytes: AtomicU64,
    records: AtomicU64,
}

/// One segment file.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Its path.
    pub path: PathBuf,
    /// Sequence number (order of writing).
    pub seq: u64,
    /// Records in it.
    pub records: u64,
    /// Size in bytes.
    pub bytes: u64,
}

impl Spool {
    /// Opens (creating, mode 0700) the spool in `dir`. Leftover temporary
    /// files from a crash are removed; whole segments are kept.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut bytes = 0;
        let mut records = 0;
        let mut last = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                fs::remove_file(entry.path())?;
                continue;
            }
            if let Some(seg) = parse_name(dir, &name, entry.metadata()?.len()) {
                bytes += seg.bytes;
                records += seg.records;
                last = last.max(seg.seq);
            }
        }
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            next_seq: Mutex::new(last + 1),
            bytes: AtomicU64::new(bytes),
            records: AtomicU64::new(records),
        })
    }

    /// Writes `lines` (JSON Lines holding `records` records) as a new segment,
    /// durable when this returns.
    pub fn append(&self, lines: &[u8], records: u64) -> io::Result<()> {
        let seq = {
            let mut next = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
            let seq = *next;
            *next += 1;
            seq
        };
        let tmp = self.dir.join(format!("{seq:020}.tmp"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(lines)?;
        file.sync_all()?;
        fs::rename(&tmp, self.dir.join(format!("{seq:020}-{records}.jsonl")))?;
        fs::File::open(&self.dir)?.sync_all()?;
        self.bytes.fetch_add(lines.len() as u64, Ordering::Relaxed);
        self.records.fetch_add(records, Ordering::Relaxed);
        Ok(())
    }

    /// The oldest segment, if any.
    pub fn oldest(&self) -> io::Result<Option<Segment>> {
        let mut oldest: Option<Segment> = None;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(seg) = parse_name(&self.dir, &name, entry.metadata()?.len()) else {
                continue;
            };
            if oldest.as_ref().is_none_or(|o| seg.seq < o.seq) {
                oldest = Some(seg);
            }
        }
        Ok(oldest)
    }

    /// Deletes a delivered segment.
    pub fn remove(&self, seg: &Segment) -> io::Result<()> {
        fs::remove_file(&seg.path)?;
        self.bytes.fetch_sub(seg.bytes, Ordering::Relaxed);
        self.records.fetch_sub(seg.records, Ordering::Relaxed);
        Ok(())
    }

    /// Moves a segment the control plane refused as malformed aside
    /// (`rejected/`), so it neither blocks delivery nor disappears.
    pub fn quarantine(&self, seg: &Segment) -> io::Result<PathBuf> {
        let dir = self.dir.join("rejected");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let to = dir.join(seg.path.file_name().unwrap_or_default());
        fs::rename(&seg.path, &to)?;
        self.bytes.fetch_sub(seg.bytes, Ordering::Relaxed);
        self.records.fetch_sub(seg.records, Ordering::Relaxed);
        Ok(to)
    }

    /// At or over the cap: no more records should be accepted.
    pub fn is_full(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) >= self.max_bytes
    }

    /// Bytes waiting.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Records waiting.
    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
}

fn parse_name(dir: &Path, name: &str, bytes: u64) -> Option<Segment> {
    let stem = name.strip_suffix(".jsonl")?;
    let (seq, records) = stem.split_once('-')?;
    Some(Segment {
        path: dir.join(name),
        seq: seq.parse().ok()?,
        records: records.parse().ok()?,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_survive_reopen_in_order_and_temporaries_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path(), 100).unwrap();
        spool.append(b"{\"a\":1}\n", 1).unwrap();
        spool.append(b"{\"b\":2}\n{\"c\":3}\n", 2).unwrap();
        assert_eq!(spool.records(), 3);
        std::fs::write(dir.path().join("00000000000000000009.tmp"), b"partial").unwrap();
        drop(spool);

        let spool = Spool::open(dir.path(), 30).unwrap();
        assert_eq!((spool.records(), spool.bytes()), (3, 24));
        assert!(!dir.path().join("00000000000000000009.tmp").exists());
        let first = spool.oldest().unwrap().unwrap();
        assert_eq!(std::fs::read(&first.path).unwrap(), b"{\"a\":1}\n");
        spool.remove(&first).unwrap();
        let second = spool.oldest().unwrap().unwrap();
        assert_eq!(second.records, 2);
        assert!(!spool.is_full());
        spool.append(&[b'x'; 20], 1).unwrap();
        assert!(spool.is_full());
        // New segments continue the sequence after a reopen.
        assert!(spool.oldest().unwrap().unwrap().seq < 4);
    }
}
