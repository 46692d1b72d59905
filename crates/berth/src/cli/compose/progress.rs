//! Progress as Docker Compose shows it, on stderr: one line a resource ("Container p-web-1
//! Started"), redrawn in place under a "[+] Running n/m" header on a terminal, one line an event
//! when piped (`--progress plain`), nothing with `--progress quiet`.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use anyhow::{bail, Result};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Redrawn in place.
    Tty,
    /// One line per event.
    Plain,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// `--progress`.
    pub fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "auto" => {
                if std::io::stderr().is_terminal() {
                    Mode::Tty
                } else {
                    Mode::Plain
                }
            }
            "tty" => Mode::Tty,
            "plain" => Mode::Plain,
            "quiet" => Mode::Quiet,
            _ => bail!("unsupported --progress value {s:?}: use auto, tty, plain or quiet"),
        })
    }
}

struct Line {
    resource: String,
    status: String,
    done: bool,
    failed: bool,
    started: Instant,
    ended: Option<Instant>,
}

/// A progress display for one command.
pub struct Progress {
    mode: Mode,
    title: &'static str,
    lines: Vec<Line>,
    drawn: usize,
}

impl Progress {
    /// Start a display titled e.g. "Running" or "Stopping".
    pub fn new(mode: Mode, title: &'static str) -> Self {
        Progress {
            mode,
            title,
            lines: Vec::new(),
            drawn: 0,
        }
    }

    /// `resource` (e.g. "Container p-web-1") is now `status`; `done` once it reached it.
    pub fn event(&mut self, resource: &str, status: &str, done: bool) {
        self.update(resource, status, done, false);
    }

    /// `resource` failed with `status`.
    pub fn fail(&mut self, resource: &str, status: &str) {
        self.update(resource, status, true, true);
    }

    fn update(&mut self, resource: &str, status: &str, done: bool, failed: bool) {
        let now = Instant::now();
        match self.lines.iter_mut().find(|l| l.resource == resource) {
            Some(l) => {
                l.status = status.to_string();
                l.done = done;
                l.failed = failed;
                l.ended = done.then_some(now);
            }
            None => self.lines.push(Line {
                resource: resource.to_string(),
                status: status.to_string(),
                done,
                failed,
                started: now,
                ended: done.then_some(now),
            }),
        }
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                let mut e = std::io::stderr().lock();
                let _ = writeln!(e, " {resource}  {status}");
            }
            Mode::Tty => self.draw(),
        }
    }

    fn draw(&mut self) {
        let mut out = String::new();
        if self.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", self.drawn));
        }
        let done = self.lines.iter().filter(|l| l.done).count();
        out.push_str(&format!("\x1b[2K[+] {} {done}/{}\n", self.title, self.lines.len()));
        let width = self.lines.iter().map(|l| l.resource.len()).max().unwrap_or(0);
        for l in &self.lines {
            let mark = match (l.done, l.failed) {
                (_, true) => "\x1b[31m✘\x1b[0m",
                (true, _) => "\x1b[32m✔\x1b[0m",
                _ => "⠿",
            };
            let secs = l.ended.unwrap_or_else(Instant::now).duration_since(l.started).as_secs_f64();
            out.push_str(&format!("\x1b[2K {mark} {:width$}  {:<12} {secs:.1}s\n", l.resource, l.status));
        }
        self.drawn = self.lines.len() + 1;
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(out.as_bytes());
        let _ = e.flush();
    }
}
