//! Progress on stderr: a bar with rates and ETA on a terminal, and — when
//! stderr is a log file or a pipe, where a bar cannot draw — a line every
//! few seconds with the same numbers, so a long build is never silent.

use std::io::IsTerminal;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How often the log thread looks at the bar (to see when the work starts).
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How often a line is written even when nothing moved.
const LOG_ANYWAY: Duration = Duration::from_secs(60);

/// A bar over `unit`s (`docs`, `queries`, `steps`) labelled `what`.
pub struct Progress {
    bar: ProgressBar,
    logger: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Progress {
    /// Shown (or logged) unless `quiet`.
    pub fn new(what: &'static str, unit: &'static str, quiet: bool) -> Progress {
        if quiet {
            return Progress {
                bar: ProgressBar::hidden(),
                logger: None,
            };
        }
        let mut progress = Progress::bar_only(what, unit);
        if !std::io::stderr().is_terminal() {
            progress.logger = Some(log_lines(
                &progress.bar,
                what.to_string(),
                Unit::Count(unit),
            ));
        }
        progress
    }

    /// A bar over bytes (downloads, conversions), labelled `what`; the file
    /// being worked on is the bar's message.
    pub fn bytes(what: &str, quiet: bool) -> Progress {
        if quiet {
            return Progress {
                bar: ProgressBar::hidden(),
                logger: None,
            };
        }
        let template = format!(
            "{what} {{bar:30}} {{bytes}}/{{total_bytes}}, {{bytes_per_sec}}, ETA {{eta}} {{msg}}"
        );
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
            .with_style(ProgressStyle::with_template(&template).expect("valid template"));
        let logger = (!std::io::stderr().is_terminal())
            .then(|| log_lines(&bar, what.to_string(), Unit::Bytes));
        Progress { bar, logger }
    }

    /// A bar on a terminal and nothing elsewhere: for work that reports its
    /// own log lines (training writes one per step).
    pub fn bar_only(what: &'static str, unit: &'static str) -> Progress {
        let template =
            format!("{what} {{bar:30}} {{pos}}/{{len}} {unit}, {{per_sec}}, ETA {{eta}} {{msg}}");
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
            .with_style(ProgressStyle::with_template(&template).expect("valid template"));
        Progress { bar, logger: None }
    }

    /// The bar the engine moves.
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Whether a bar is drawn (false for a log file or with `quiet`).
    pub fn draws(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Clears the bar and stops the log lines (after a last one).
    pub fn finish(mut self) {
        self.stop();
        self.bar.finish_and_clear();
    }

    fn stop(&mut self) {
        if let Some((stop, thread)) = self.logger.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a bar counts, for its log lines.
#[derive(Clone, Copy)]
enum Unit {
    Count(&'static str),
    Bytes,
}

/// A thread writing `what pos/len unit, rate, ETA msg` every [`LOG_EVERY`]
/// while the bar moves, at least every [`LOG_ANYWAY`] while it does not (a
/// build moves a chunk of documents at a time: the line says it is alive),
/// and once more when stopped.
fn log_lines(bar: &ProgressBar, what: String, unit: Unit) -> (mpsc::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = mpsc::channel::<()>();
    let bar = bar.clone();
    let thread = std::thread::spawn(move || {
        let mut last = None;
        let mut last_line = std::time::Instant::now();
        // The rate is the average since the bar got its length (the work's
        // start; a resumed build's stored rows are already in the position
        // then, and do not count): indicatif's own estimate decays between
        // the rare, large steps of a build (a chunk of documents at a time)
        // and read 0/s with an ETA of centuries. The bar is looked at often
        // so that start is seen; lines are written every LOG_EVERY.
        let mut baseline: Option<(u64, std::time::Instant)> = None;
        loop {
            let done = !matches!(
                stopped.recv_timeout(SAMPLE_EVERY),
                Err(RecvTimeoutError::Timeout)
            );
            let position = bar.position();
            let length = bar.length().unwrap_or(0);
            if length == 0 {
                if done {
                    break;
                }
                continue;
            }
            let (start, since) = *baseline.get_or_insert((position, std::time::Instant::now()));
            let moved = last != Some(position);
            let due = (moved && last_line.elapsed() >= LOG_EVERY)
                || last_line.elapsed() >= LOG_ANYWAY
                || (done && moved);
            if !due {
                if done {
                    break;
                }
                continue;
            }
            let elapsed = since.elapsed().as_secs_f64();
            let rate = if elapsed > 0.0 {
                position.saturating_sub(start) as f64 / elapsed
            } else {
                0.0
            };
            let eta = if position >= length {
                "0s".to_string()
            } else if rate > 0.0 {
                indicatif::HumanDuration(std::time::Duration::from_secs_f64(
                    length.saturating_sub(position) as f64 / rate,
                ))
                .to_string()
            } else {
                "unknown".to_string()
            };
            last = Some(position);
            last_line = std::time::Instant::now();
            let message = bar.message();
            let amounts = match unit {
                Unit::Count(unit) => format!("{position}/{length} {unit}, {rate:.1} {unit}/s"),
                Unit::Bytes => format!(
                    "{}/{}, {}/s",
                    indicatif::DecimalBytes(position),
                    indicatif::DecimalBytes(length),
                    indicatif::DecimalBytes(rate as u64)
                ),
            };
            eprintln!(
                "{what}: {amounts}, ETA {eta}{}{}",
                if message.is_empty() { "" } else { ", " },
                message
            );
            if done {
                break;
            }
        }
    });
    (stop, thread)
}
