//! Forwards `tracing` events to Python's `logging` (logger `trainstore`).
//!
//! The level comes from `TRAINSTORE_LOG` (default `info`), filtered in Rust so that disabled
//! events never cost a call into Python.

use std::fmt::Write;

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

struct PythonLogging {
    logger: Py<PyAny>,
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let level = match *event.metadata().level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            _ => 10,
        };
        let mut message = Message::default();
        event.record(&mut message);
        let target = event.metadata().target();
        Python::attach(|py| {
            let _ =
                self.logger
                    .call_method1(py, "log", (level, format!("{}: {}", target, message.0)));
        });
    }
}

/// Installs the bridge as the process's tracing subscriber (once; later calls do nothing).
pub fn install(py: Python<'_>) -> PyResult<()> {
    let logger = py
        .import("logging")?
        .call_method1("getLogger", ("trainstore",))?
        .unbind();
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAINSTORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(PythonLogging { logger }.with_filter(filter))
        .try_init();
    Ok(())
}
