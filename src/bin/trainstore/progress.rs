//! Draws the library's progress reports on stderr: a redrawn bar on a terminal, a few plain
//! lines otherwise (logs and CI output stay readable).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use trainstore::core::Progress;

pub struct TerminalProgress {
    tty: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    label: String,
    total: Option<u64>,
    done: u64,
    last_draw: Option<Instant>,
    last_quarter: u64,
}

impl TerminalProgress {
    pub fn new() -> Self {
        TerminalProgress {
            tty: std::io::stderr().is_terminal(),
            state: Mutex::new(State::default()),
        }
    }

    fn draw(&self, s: &State, final_line: bool) {
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
            ..State::default()
        };
        self.draw(&s, false);
    }

    fn advance(&self, delta: u64) {
        let mut s = self.state.lock().expect("progress state");
        s.done += delta;
        if self.tty {
            if s.last_draw
                .is_none_or(|t| t.elapsed() > Duration::from_millis(100))
            {
                s.last_draw = Some(Instant::now());
                self.draw(&s, false);
            }
        } else if let Some(total) = s.total.filter(|t| *t > 0) {
            let quarter = s.done * 4 / total;
            if quarter > s.last_quarter && quarter < 4 {
                s.last_quarter = quarter;
                self.draw(&s, false);
            }
        }
    }

    fn finish(&self) {
        let s = self.state.lock().expect("progress state");
        self.draw(&s, true);
    }
}
