//! How the training loop tells its caller where it stands. The library prints nothing
//! itself: the caller picks a terminal bar or a line per step through [`TrainReport`].

use indicatif::ProgressBar;

/// Where a step stands, for [`TrainReport::step_done`].
#[derive(Debug, Clone, Copy)]
pub struct StepProgress {
    /// Steps done (1-based) and the schedule's length.
    pub step: usize,
    pub total_steps: usize,
    pub loss: f64,
    pub learning_rate: f64,
    /// Wall seconds of this step.
    pub seconds: f64,
    /// Real tokens per second since this invocation started.
    pub tokens_per_second: f64,
}

/// How the loop reports progress; the library prints nothing itself. A [`ProgressBar`]
/// reports by moving (hidden, it reports nothing); a batch job's log may want a line per step
/// instead (the `quarry train` binary does both, by whether stderr is a terminal).
pub trait TrainReport {
    /// Before the first step: the schedule's length and the step it starts from.
    fn started(&self, _total_steps: usize, _start_step: usize) {}
    /// A micro-batch of the invocation's first step went forward and backward. That step
    /// compiles and tunes the GPU kernels of every shape, so it can take minutes.
    fn first_step_micro_batch(&self, _step: usize, _micro_batch: usize, _seconds: f64) {}
    /// An optimiser step finished.
    fn step_done(&self, _progress: &StepProgress) {}
}

impl TrainReport for ProgressBar {
    fn started(&self, total_steps: usize, start_step: usize) {
        self.set_length(total_steps as u64);
        self.set_position(start_step as u64);
    }

    fn step_done(&self, progress: &StepProgress) {
        self.set_position(progress.step as u64);
        self.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.0} tok/s",
            progress.loss, progress.learning_rate, progress.tokens_per_second
        ));
    }
}
