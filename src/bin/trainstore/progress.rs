//! Draws the library's progress reports on stderr: a redrawn bar on a terminal, a few plain
//! lines otherwise (logs and CI output stay readable).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use trainstore::core::Progress;

/// How long a usually quick command (a query, a join, a materialization) runs before its
/// progress is shown.
pub const QUICK_CALL_DELAY: Duration = Duration::from_secs(1);

pub struct TerminalProgress {
    tty: bool,
    /// How long an operation runs before it is shown: quick calls stay silent.
    delay: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    label: String,
    total: Option<u64>,
    done: u64,
    last_draw: Option<Instant>,
    last_quarter: u64,
    started: Option<Instant>,
    shown: bool,
}

impl TerminalProgress {
    pub fn new() -> Self {
        Self::after(Duration::ZERO)
    }

    /// Shows an operation only once it has run for `delay`.
    pub fn after(delay: Duration) -> Self {
        TerminalProgress {
            tty: std::io::stderr().is_terminal(),
            delay,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether the current operation has run long enough to be shown.
    fn due(&self, s: &State) -> bool {
        s.started.is_some_and(|t| t.elapsed() >= self.delay)
    }

    fn draw(&self, s: &mut State, final_line: bool) {
        s.shown = true;
        let mut err = std::io::stderr().lock();
        let line = match s.total {
            Some(total) if total > 0 => {
                let frac = (s.done as f64 / total as f64).min(1.0);
                let filled = (frac * 30.0).round() as usize;
                format!(
                    "{} [{}{}] {:>3}% ({}/{})",
                    s.label,
                    "#".repeat(filled),
                    ".".repeat(30 - filled),
                    (frac * 100.0).round(),
                    s.done,
                    total
                )
            }
            _ => format!("{} ({} done)", s.label, s.done),
        };
        let _ = if self.tty {
            write!(err, "\r\x1b[2K{line}{}", if final_line { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
    }
}

impl Progress for TerminalProgress {
    fn begin(&self, label: &str, total: Option<u64>) {
        let mut s = self.state.lock().expect("progress state");
        *s = State {
            label: label.to_owned(),
            total,
            started: Some(Instant::now()),
            ..State::default()
        };
        if self.due(&s) {
            self.draw(&mut s, false);
        }
    }

    fn advance(&self, delta: u64) {
        let mut s = self.state.lock().expect("progress state");
        s.done += delta;
        if !s.shown {
            if self.due(&s) {
                s.last_draw = Some(Instant::now());
                self.draw(&mut s, false);
            }
        } else if self.tty {
            if s.last_draw
                .is_none_or(|t| t.elapsed() > Duration::from_millis(100))
            {
                s.last_draw = Some(Instant::now());
                self.draw(&mut s, false);
            }
        } else if let Some(total) = s.total.filter(|t| *t > 0) {
            let quarter = s.done * 4 / total;
            if quarter > s.last_quarter && quarter < 4 {
                s.last_quarter = quarter;
                self.draw(&mut s, false);
            }
        }
    }

    fn finish(&self) {
        let mut s = self.state.lock().expect("progress state");
        if s.shown || self.due(&s) {
            self.draw(&mut s, true);
        }
    }
}
