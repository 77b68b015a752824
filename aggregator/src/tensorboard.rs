//! TensorBoard event files of a federation: `events.out.tfevents.SECONDS.fedcare` in a folder,
//! a scalar per metric of each completed session (the round as the step), the same metrics an
//! MLflow run gets ([`crate::tracking::record_metrics`]).
//!
//! The file is TensorBoard's own format: `Event` protocol buffers (the fields of
//! `tensorflow/core/util/event.proto` that scalars use, declared here with prost) in TFRecord
//! framing: the data's length (u64, little endian), the masked CRC-32C of those 8 bytes, the
//! data, the masked CRC-32C of the data. Every record is flushed when written: a crash keeps
//! every whole record before it.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fedcare_protocol::RoundRecord;
use prost::Message as _;

/// `tensorflow.Event`: the fields scalars use.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The step (the round).
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// A file version or a summary.
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// `Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The first event of a file: `brain.Event:2`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Scalars.
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// The values.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value` with a `simple_value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The scalar's name.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Its value.
    #[prost(float, tag = "2")]
    pub simple_value: f32,
}

/// TFRecord's masked CRC-32C.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// An event file being written.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Creates the folder `dir` if missing and a new event file in it, its first event the file
    /// version.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let path = dir.join(format!("events.out.tfevents.{seconds}.fedcare"));
        let file = std::fs::OpenOptions::new().create_new(true).write(true).open(&path)?;
        let mut writer = Self { path, file: BufWriter::new(file) };
        writer.write_event(&Event {
            wall_time: wall_time(),
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        })?;
        Ok(writer)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, event: &Event) -> std::io::Result<()> {
        let data = event.encode_to_vec();
        let length = (data.len() as u64).to_le_bytes();
        self.file.write_all(&length)?;
        self.file.write_all(&masked_crc(&length).to_le_bytes())?;
        self.file.write_all(&data)?;
        self.file.write_all(&masked_crc(&data).to_le_bytes())?;
        self.file.flush()
    }

    /// Writes a completed session's metrics as scalars at its round.
    pub fn write_record(&mut self, record: &RoundRecord) -> std::io::Result<()> {
        let value = crate::tracking::record_metrics(record)
            .into_iter()
            .map(|(tag, value)| SummaryValue { tag, simple_value: value as f32 })
            .collect();
        let event = Event {
            wall_time: wall_time(),
            step: i64::from(record.round),
            what: Some(What::Summary(Summary { value })),
        };
        self.write_event(&event)
    }
}

fn wall_time() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The events of an event file, each record's framing and checksums checked (what TensorBoard
/// reads; for tests and tools).
pub fn read_events(path: &Path) -> Result<Vec<Event>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut events = Vec::new();
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let bad = |what: &str| format!("{}: {what} at byte {}", path.display(), bytes.len() - rest.len());
        let (Some(length), Some(length_crc)) = (rest.get(..8), rest.get(8..12)) else {
            return Err(bad("a cut record"));
        };
        if masked_crc(length).to_le_bytes() != length_crc {
            return Err(bad("a length whose checksum does not match"));
        }
        let length = usize::try_from(u64::from_le_bytes(length.try_into().map_err(|_| bad("a length"))?))
            .map_err(|_| bad("a length past memory"))?;
        let end = 12usize.checked_add(length).ok_or_else(|| bad("a length past memory"))?;
        let (Some(data), Some(data_crc)) = (rest.get(12..end), rest.get(end..end + 4)) else {
            return Err(bad("a cut record"));
        };
        if masked_crc(data).to_le_bytes() != data_crc {
            return Err(bad("data whose checksum does not match"));
        }
        events.push(Event::decode(data).map_err(|e| bad(&format!("an event that does not decode ({e})")))?);
        rest = &rest[end + 4..];
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcare_protocol::{SessionId, SessionKind};

    #[test]
    fn records_are_written_as_scalars_at_their_round_and_read_back_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = EventWriter::create(dir.path()).unwrap();
        for round in 1..=2 {
            let mut record = RoundRecord::new(SessionId { round, attempt: 0 }, SessionKind::Train, 3);
            record.auroc = Some(0.5 + f64::from(round) / 10.0);
            writer.write_record(&record).unwrap();
        }
        let events = read_events(writer.path()).unwrap();
        assert_eq!(events[0].what, Some(What::FileVersion("brain.Event:2".into())));
        let aurocs: Vec<(i64, f32)> = events[1..]
            .iter()
            .filter_map(|event| match &event.what {
                Some(What::Summary(summary)) => {
                    summary.value.iter().find(|v| v.tag == "auroc").map(|v| (event.step, v.simple_value))
                }
                _ => None,
            })
            .collect();
        assert_eq!(aurocs, [(1, 0.6), (2, 0.7)]);
        // A flipped byte is caught by the checksums.
        let mut bytes = std::fs::read(writer.path()).unwrap();
        let at = bytes.len() - 6;
        bytes[at] ^= 1;
        std::fs::write(writer.path(), &bytes).unwrap();
        assert!(read_events(writer.path()).unwrap_err().contains("checksum"));
    }
}
