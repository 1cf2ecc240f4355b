//! The buffers' gauges, published by the loop every [`BUFFERS_EVERY`]. (The consumer lag is
//! the group's, sampled apart from the loop: [`crate::lag`].)

use std::time::Duration;

use super::State;
use crate::metrics;

/// How often the loop publishes its buffers' size.
pub(super) const BUFFERS_EVERY: Duration = Duration::from_secs(15);

impl State<'_> {
    /// Publishes the buffers' size.
    pub(super) fn measure_buffers(&self) {
        metrics::buffers(self.windows.footprint(), self.windows.len());
    }
}
