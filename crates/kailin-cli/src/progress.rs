//! Progress bars (with ETA) on stderr: the libraries report through callbacks, the binary draws.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` items labelled `what`.
pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} [{elapsed_precise}, ETA {eta}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

/// The bar of a training run, made at its first step (a resumed run starts part-way).
#[derive(Debug, Default)]
pub(crate) struct TrainBar(Option<ProgressBar>);

impl TrainBar {
    /// Moves the bar to the step `p` reports.
    pub(crate) fn update(&mut self, p: &kailin_train::Progress<'_>) {
        let bar = self.0.get_or_insert_with(|| {
            let bar = ProgressBar::new(p.last).with_position(p.log.step.saturating_sub(1));
            bar.set_style(
                ProgressStyle::with_template("{bar:30} step {pos}/{len} · {msg} · ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.reset_eta();
            bar
        });
        let eval = p.eval_loss.map(|e| format!(" · eval {e:.4}")).unwrap_or_default();
        bar.set_message(format!("loss {:.4}{eval} · {:.0} tok/s", p.log.loss, p.tokens_per_second));
        bar.set_position(p.log.step);
    }
}

impl Drop for TrainBar {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
