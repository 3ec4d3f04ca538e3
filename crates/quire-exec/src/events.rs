//! Where an executor's events go: the [`EventSink`] interface, the
//! `events.jsonl` file sink, and combinators. The event types themselves
//! live in `quire_model::events`, beside their ingestion into the store.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub use quire_model::events::Event;

/// Receives each event as it happens.
pub trait EventSink {
    fn emit(&mut self, event: &Event) -> io::Result<()>;

    /// Called while a step runs quietly and when the run ends: a sink that
    /// batches events writes out what it holds.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends events to `events.jsonl` in the one encoding ingestion reads
/// ([`Event::to_line`]), each line written with a single `write` and flushed
/// per event: a crash can tear at most the last line, which ingestion
/// ignores.
pub struct JsonlFile {
    file: File,
}

impl JsonlFile {
    pub fn create(path: &Path) -> io::Result<JsonlFile> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(JsonlFile { file })
    }
}

impl EventSink for JsonlFile {
    fn emit(&mut self, event: &Event) -> io::Result<()> {
        self.file.write_all(event.to_line().as_bytes())?;
        self.file.flush()
    }
}

/// Keeps every event in memory (for callers that want the list).
#[derive(Debug, Default)]
pub struct Recorded(pub Vec<Event>);

impl EventSink for Recorded {
    fn emit(&mut self, event: &Event) -> io::Result<()> {
        self.0.push(event.clone());
        Ok(())
    }
}

/// Both sinks, in order: `(file, live_ingest)`.
impl<A: EventSink, B: EventSink> EventSink for (A, B) {
    fn emit(&mut self, event: &Event) -> io::Result<()> {
        self.0.emit(event)?;
        self.1.emit(event)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()?;
        self.1.flush()
    }
}

impl<S: EventSink + ?Sized> EventSink for &mut S {
    fn emit(&mut self, event: &Event) -> io::Result<()> {
        (**self).emit(event)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
}
