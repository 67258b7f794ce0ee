//! A per-sink disk spool: append-only segment files of checksummed records, one record per
//! batch, replayed oldest first.
//!
//! Record layout: `len: u32 LE | crc32(payload): u32 LE | payload` where the payload is the
//! batch as a JSON array of events. Segments are `seg-<20-digit sequence>.log`; a segment is
//! deleted once every record in it has been delivered, and `cursor` remembers how far the
//! oldest segment has been delivered (so a restart re-sends at most the batch in flight).
//!
//! On open, every segment is scanned: a record whose length or checksum is wrong (a write cut
//! by a crash) ends that segment: the file is truncated there, and what was cut is reported
//! and counted, never a panic or a stuck sink.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::event::Event;
use crate::sink::Batch;

/// When spooled data is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// After every batch: nothing acknowledged to the spool is lost to a power cut.
    Always,
    /// Leave it to the OS (default): survives a process crash, not a power cut.
    #[default]
    Never,
}

/// What to do when the spool is at its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpoolFullPolicy {
    /// Delete the oldest segment to make room (default): keep the freshest data.
    #[default]
    DropOldest,
    /// Refuse the new batch.
    DropNewest,
}

/// Disk spool settings for one sink.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SpoolOptions {
    /// The sink's spool directory.
    pub dir: PathBuf,
    /// Total size limit. Default 256 MiB.
    pub max_bytes: u64,
    /// Segment size before rotation. Default 16 MiB.
    pub segment_bytes: u64,
    /// Default [`FsyncPolicy::Never`].
    pub fsync: FsyncPolicy,
    /// Default [`SpoolFullPolicy::DropOldest`].
    pub when_full: SpoolFullPolicy,
}

impl SpoolOptions {
    /// A spool in `dir` with the defaults.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolOptions {
            dir: dir.into(),
            max_bytes: 256 << 20,
            segment_bytes: 16 << 20,
            fsync: FsyncPolicy::Never,
            when_full: SpoolFullPolicy::DropOldest,
        }
    }

    /// Sets the total size limit.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n.max(1);
        self
    }

    /// Sets the segment size.
    pub fn segment_bytes(mut self, n: u64) -> Self {
        self.segment_bytes = n.max(1);
        self
    }

    /// Sets the fsync policy.
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Sets what happens when the spool is full.
    pub fn when_full(mut self, policy: SpoolFullPolicy) -> Self {
        self.when_full = policy;
        self
    }
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// (offset, length incl. header, events, oldest timestamp) of each live record.
    records: VecDeque<(u64, u64, u64, SystemTime)>,
    size: u64,
}

/// What [`Spool::push`] had to drop to make room, or refused.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PushOutcome {
    /// Events dropped (the oldest, or the new batch) because the spool was full.
    pub dropped_events: u64,
}

/// The spool of one sink. Synchronous file I/O: call it from a blocking context.
#[derive(Debug)]
pub struct Spool {
    options: SpoolOptions,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    /// Records cut or unreadable at open (reported once).
    pub corrupt_records: u64,
}

const HEADER: u64 = 8;

impl Spool {
    /// Opens (or creates) the spool, scanning and repairing what a crash left.
    pub fn open(options: SpoolOptions) -> io::Result<Spool> {
        fs::create_dir_all(&options.dir)?;
        let mut seqs: Vec<u64> = fs::read_dir(&options.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("seg-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()
            })
            .collect();
        seqs.sort_unstable();
        let cursor = read_cursor(&options.dir);
        let mut spool = Spool {
            options,
            segments: VecDeque::new(),
            writer: None,
            corrupt_records: 0,
        };
        for seq in seqs {
            let path = spool.segment_path(seq);
            let skip_to = match cursor {
                Some((s, offset)) if s == seq => offset,
                Some((s, _)) if s > seq => u64::MAX, // fully delivered before the crash
                _ => 0,
            };
            let segment = spool.scan(seq, path, skip_to)?;
            if segment.records.is_empty() {
                let _ = fs::remove_file(&segment.path);
            } else {
                spool.segments.push_back(segment);
            }
        }
        Ok(spool)
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.options.dir.join(format!("seg-{seq:020}.log"))
    }

    /// Reads a segment's records, truncating at the first damaged one.
    fn scan(&mut self, seq: u64, path: PathBuf, skip_to: u64) -> io::Result<Segment> {
        let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        let mut reader = BufReader::new(&mut file);
        let mut records = VecDeque::new();
        let mut offset = 0u64;
        let mut good_end = 0u64;
        loop {
            match read_record(&mut reader) {
                Ok(Some(payload)) => {
                    let rec_len = HEADER + payload.len() as u64;
                    if offset >= skip_to {
                        let (events, oldest) = summarize(&payload);
                        records.push_back((offset, rec_len, events, oldest));
                    }
                    offset += rec_len;
                    good_end = offset;
                }
                Ok(None) => break,
                Err(e) => {
                    self.corrupt_records += 1;
                    tracing::warn!(target: "tracepost::spool", path = %path.display(), offset,
                        cut_bytes = len - good_end, error = %e,
                        "damaged spool record (likely a write cut by a crash); truncating the segment there");
                    break;
                }
            }
        }
        drop(reader);
        if good_end < len {
            file.set_len(good_end)?;
        }
        Ok(Segment {
            seq,
            path,
            records,
            size: good_end,
        })
    }

    /// Total bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Batches waiting.
    pub fn batches(&self) -> usize {
        self.segments.iter().map(|s| s.records.len()).sum()
    }

    /// Events waiting.
    pub fn events(&self) -> u64 {
        self.segments
            .iter()
            .flat_map(|s| s.records.iter().map(|r| r.2))
            .sum()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.records.is_empty())
    }

    /// Age of the oldest waiting event.
    pub fn oldest_age(&self) -> Option<Duration> {
        let oldest = self
            .segments
            .iter()
            .flat_map(|s| s.records.iter().map(|r| r.3))
            .min()?;
        Some(SystemTime::now().duration_since(oldest).unwrap_or_default())
    }

    /// Appends a batch. When the spool is full, applies the full policy and reports how many
    /// events it dropped.
    pub fn push(&mut self, batch: &[Arc<Event>]) -> io::Result<PushOutcome> {
        // A JSON array of the events, each written by the event writer (the same bytes as
        // `serde_json` would write).
        let mut payload = Vec::with_capacity(batch.len() * 512 + 2);
        payload.push(b'[');
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                payload.push(b',');
            }
            crate::event::json::write_event(&mut payload, e)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        payload.push(b']');
        let rec_len = HEADER + payload.len() as u64;
        let mut outcome = PushOutcome::default();
        while self.bytes() + rec_len > self.options.max_bytes && !self.segments.is_empty() {
            match self.options.when_full {
                SpoolFullPolicy::DropNewest => {
                    outcome.dropped_events += batch.len() as u64;
                    return Ok(outcome);
                }
                SpoolFullPolicy::DropOldest => {
                    let Some(seg) = self.segments.pop_front() else {
                        break;
                    };
                    outcome.dropped_events += seg.records.iter().map(|r| r.2).sum::<u64>();
                    if self.segments.is_empty() {
                        self.writer = None;
                    }
                    fs::remove_file(&seg.path)?;
                }
            }
        }
        let rotate = match self.segments.back() {
            None => true,
            Some(s) => s.size + rec_len > self.options.segment_bytes && s.size > 0,
        };
        if rotate || self.writer.is_none() {
            let seq = self.segments.back().map_or(0, |s| s.seq + 1);
            if rotate {
                let path = self.segment_path(seq);
                self.writer = Some(OpenOptions::new().create(true).append(true).open(&path)?);
                self.segments.push_back(Segment {
                    seq,
                    path,
                    records: VecDeque::new(),
                    size: 0,
                });
            } else if let Some(s) = self.segments.back() {
                self.writer = Some(OpenOptions::new().append(true).open(&s.path)?);
            }
        }
        let writer = self.writer.as_mut().expect("opened above");
        let mut record = Vec::with_capacity(rec_len as usize);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        record.extend_from_slice(&payload);
        writer.write_all(&record)?;
        if self.options.fsync == FsyncPolicy::Always {
            writer.sync_data()?;
        }
        let oldest = batch
            .iter()
            .map(|e| e.timestamp.system_time())
            .min()
            .unwrap_or_else(SystemTime::now);
        let seg = self.segments.back_mut().expect("a segment is open");
        seg.records
            .push_back((seg.size, rec_len, batch.len() as u64, oldest));
        seg.size += rec_len;
        Ok(outcome)
    }

    /// The oldest waiting batch (not removed until [`Spool::ack`]).
    pub fn peek(&mut self) -> io::Result<Option<Batch>> {
        while let Some(seg) = self.segments.front() {
            let Some(&(offset, len, _, _)) = seg.records.front() else {
                self.drop_front_segment()?;
                continue;
            };
            let mut file = File::open(&seg.path)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut buf = vec![0u8; len as usize];
            file.read_exact(&mut buf)?;
            let payload = &buf[HEADER as usize..];
            let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
            if crc32fast::hash(payload) != crc {
                // Damaged after it was written: report, skip, never loop on it.
                self.corrupt_records += 1;
                tracing::warn!(target: "tracepost::spool", path = %seg.path.display(), offset,
                    "spool record failed its checksum on replay; skipped");
                self.ack()?;
                continue;
            }
            let events: Vec<Event> = match serde_json::from_slice(payload) {
                Ok(e) => e,
                Err(e) => {
                    self.corrupt_records += 1;
                    tracing::warn!(target: "tracepost::spool", error = %e, "unreadable spool record; skipped");
                    self.ack()?;
                    continue;
                }
            };
            return Ok(Some(events.into_iter().map(Arc::new).collect()));
        }
        Ok(None)
    }

    /// Removes the oldest batch (after the sink confirmed it).
    pub fn ack(&mut self) -> io::Result<()> {
        let Some(seg) = self.segments.front_mut() else {
            return Ok(());
        };
        let Some((offset, len, _, _)) = seg.records.pop_front() else {
            return Ok(());
        };
        if seg.records.is_empty() {
            self.drop_front_segment()?;
        } else {
            write_cursor(&self.options.dir, seg.seq, offset + len)?;
        }
        Ok(())
    }

    fn drop_front_segment(&mut self) -> io::Result<()> {
        if let Some(seg) = self.segments.pop_front() {
            if self.segments.is_empty() {
                self.writer = None;
            }
            fs::remove_file(&seg.path).or_else(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
            let next = self
                .segments
                .front()
                .map(|s| (s.seq, s.records.front().map_or(0, |r| r.0)));
            match next {
                Some((seq, offset)) => write_cursor(&self.options.dir, seq, offset)?,
                None => {
                    let _ = fs::remove_file(self.options.dir.join("cursor"));
                }
            }
        }
        Ok(())
    }
}

fn read_record(r: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; HEADER as usize];
    let mut got = 0;
    while got < header.len() {
        match r.read(&mut header[got..])? {
            0 if got == 0 => return Ok(None),
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "record header cut short",
                ))
            }
            n => got += n,
        }
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > 1 << 30 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("implausible record length {len}"),
        ));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)
        .map_err(|_| io::Error::new(io::ErrorKind::UnexpectedEof, "record payload cut short"))?;
    if crc32fast::hash(&payload) != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "record checksum mismatch",
        ));
    }
    Ok(Some(payload))
}

/// Counts a record's events and finds its oldest timestamp without a full parse.
fn summarize(payload: &[u8]) -> (u64, SystemTime) {
    #[derive(serde::Deserialize)]
    struct Stamp {
        timestamp: crate::event::Timestamp,
    }
    match serde_json::from_slice::<Vec<Stamp>>(payload) {
        Ok(v) => (
            v.len() as u64,
            v.iter()
                .map(|s| s.timestamp.system_time())
                .min()
                .unwrap_or_else(SystemTime::now),
        ),
        Err(_) => (0, SystemTime::now()),
    }
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let text = fs::read_to_string(dir.join("cursor")).ok()?;
    let (seq, offset) = text.trim().split_once(' ')?;
    Some((seq.parse().ok()?, offset.parse().ok()?))
}

fn write_cursor(dir: &Path, seq: u64, offset: u64) -> io::Result<()> {
    // Written via rename so a crash leaves the old or the new cursor, never half of one.
    let tmp = dir.join("cursor.tmp");
    fs::write(&tmp, format!("{seq} {offset}\n"))?;
    fs::rename(tmp, dir.join("cursor"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Kind, Level};

    fn batch(n: usize, tag: &str) -> Batch {
        (0..n)
            .map(|i| Arc::new(Event::new(Kind::Log, Level::Info, format!("{tag} {i}"))))
            .collect()
    }

    fn messages(b: &Batch) -> Vec<String> {
        b.iter().map(|e| e.message.clone()).collect()
    }

    #[test]
    fn replays_in_order_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SpoolOptions::new(dir.path()).segment_bytes(600);
        let mut s = Spool::open(opts.clone()).unwrap();
        for tag in ["a", "b", "c", "d"] {
            s.push(&batch(2, tag)).unwrap();
        }
        assert_eq!((s.batches(), s.events()), (4, 8));
        assert!(s.segments.len() > 1, "rotated");
        assert_eq!(messages(&s.peek().unwrap().unwrap()), ["a 0", "a 1"]);
        s.ack().unwrap();
        drop(s);
        // A restart resumes after what was acknowledged.
        let mut s = Spool::open(opts).unwrap();
        let mut seen = Vec::new();
        while let Some(b) = s.peek().unwrap() {
            seen.push(b[0].message.clone());
            s.ack().unwrap();
        }
        assert_eq!(seen, ["b 0", "c 0", "d 0"]);
        assert!(s.is_empty());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "delivered segments are deleted"
        );
    }

    #[test]
    fn a_torn_tail_is_detected_reported_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SpoolOptions::new(dir.path());
        let mut s = Spool::open(opts.clone()).unwrap();
        s.push(&batch(3, "ok")).unwrap();
        s.push(&batch(3, "torn")).unwrap();
        let path = s.segments[0].path.clone();
        drop(s);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap(); // a crash mid-write
        let mut s = Spool::open(opts.clone()).unwrap();
        assert_eq!(s.corrupt_records, 1);
        assert_eq!(
            messages(&s.peek().unwrap().unwrap()),
            ["ok 0", "ok 1", "ok 2"]
        );
        s.ack().unwrap();
        assert!(s.peek().unwrap().is_none());
        // Appending after repair works, and a flipped byte is caught by the checksum.
        s.push(&batch(1, "new")).unwrap();
        let path = s.segments[0].path.clone();
        drop(s);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let mut s = Spool::open(opts).unwrap();
        assert_eq!(s.corrupt_records, 1);
        assert!(s.peek().unwrap().is_none());
    }

    #[test]
    fn full_policies_drop_oldest_or_newest_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(
            SpoolOptions::new(dir.path())
                .max_bytes(1500)
                .segment_bytes(400),
        )
        .unwrap();
        let mut dropped = 0;
        for i in 0..10 {
            dropped += s.push(&batch(1, &format!("e{i}"))).unwrap().dropped_events;
        }
        assert!(s.bytes() <= 1500);
        assert_eq!(dropped + s.events(), 10, "every event is kept or counted");
        assert_eq!(
            s.peek().unwrap().unwrap()[0].message.split(' ').next(),
            Some(format!("e{dropped}").as_str()),
            "the oldest went first"
        );

        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(
            SpoolOptions::new(dir.path())
                .max_bytes(1500)
                .segment_bytes(400)
                .when_full(SpoolFullPolicy::DropNewest),
        )
        .unwrap();
        let mut dropped = 0;
        for i in 0..10 {
            dropped += s.push(&batch(1, &format!("e{i}"))).unwrap().dropped_events;
        }
        assert_eq!(dropped + s.events(), 10);
        assert_eq!(
            messages(&s.peek().unwrap().unwrap()),
            ["e0 0"],
            "the newest were refused"
        );
    }
}
