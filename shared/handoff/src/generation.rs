//! Handoff generations: positions that keep increasing when the handoff topic is replaced.
//!
//! A file's `seq`, a cut, an archive batch's range: every position dwsync keeps is derived from
//! an offset of the handoff topic. A recreated topic, or the same topic on another Kafka
//! cluster, starts its offsets at 0 again, so those positions would restart lower and collide
//! with objects already in customers' buckets and in the archive. The topic therefore belongs to
//! a *generation*, advanced by an operator each time the topic is replaced (`dwsync handoff
//! advance`, docs/DEPLOY.md), and a position is `generation × 10^12 + offset`: generation 0 is
//! the offset itself, every later generation's positions lie above every earlier one's.

use std::fmt;

/// Offsets per generation: a handoff partition holding 10^12 records would overflow into the
/// next generation, which [`Generation::position`] refuses.
pub const SPAN: i64 = 1_000_000_000_000;

/// The highest generation: its positions still fit an `i64`.
pub const MAX: u32 = 9_223_371;

/// The generation of the handoff topic a service reads or writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(u32);

/// Where a position lies relative to a generation's topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// An earlier generation's topic: before every offset of this one.
    Earlier,
    /// This generation's topic, at this offset.
    Here(i64),
    /// A later generation's topic.
    Later,
}

/// An offset that has no position: negative, or past [`SPAN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("handoff offset {offset} has no position in generation {generation} (offsets run from 0 below 10^12)")]
pub struct OutOfSpan {
    /// The offset.
    pub offset: i64,
    /// The generation.
    pub generation: u32,
}

impl Generation {
    /// The generation numbered `n`, `None` past [`MAX`].
    pub const fn new(n: u32) -> Option<Self> {
        if n <= MAX { Some(Self(n)) } else { None }
    }

    /// Its number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The next generation, `None` past [`MAX`].
    pub fn next(self) -> Option<Self> {
        Self::new(self.0 + 1)
    }

    /// The first position of this generation (its topic's offset 0).
    pub const fn start(self) -> i64 {
        // At most MAX × SPAN: no overflow.
        self.0 as i64 * SPAN
    }

    /// The position of `offset` in this generation's topic.
    pub fn position(self, offset: i64) -> Result<i64, OutOfSpan> {
        if (0..SPAN).contains(&offset) {
            Ok(self.start() + offset)
        } else {
            Err(OutOfSpan { offset, generation: self.0 })
        }
    }

    /// Where `position` lies: in this generation's topic (at which offset) or before or after it.
    pub fn locate(self, position: i64) -> Located {
        if position < self.start() {
            Located::Earlier
        } else if position - self.start() < SPAN {
            Located::Here(position - self.start())
        } else {
            Located::Later
        }
    }

    /// The offset in this generation's topic from which reading covers `position`: the offset
    /// itself, 0 for an earlier generation's position (everything of this topic comes after
    /// it), `None` for a later generation's.
    pub fn offset_from(self, position: i64) -> Option<i64> {
        match self.locate(position) {
            Located::Earlier => Some(0),
            Located::Here(offset) => Some(offset),
            Located::Later => None,
        }
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_zero_positions_are_the_offsets() {
        let zero = Generation::default();
        assert_eq!(zero.position(0), Ok(0));
        assert_eq!(zero.position(41), Ok(41));
        assert_eq!(zero.locate(41), Located::Here(41));
    }

    #[test]
    fn a_later_generation_lies_above_every_earlier_position() {
        let (zero, one) = (Generation::default(), Generation::new(1).expect("in range"));
        let last_of_zero = zero.position(SPAN - 1).expect("in span");
        let first_of_one = one.position(0).expect("in span");
        assert!(first_of_one > last_of_zero);
        assert_eq!(first_of_one, 1_000_000_000_000);
        assert_eq!(one.locate(last_of_zero), Located::Earlier);
        assert_eq!(zero.locate(first_of_one), Located::Later);
        assert_eq!(one.offset_from(last_of_zero), Some(0), "an earlier position: read this topic from its start");
        assert_eq!(zero.offset_from(first_of_one), None);
        assert_eq!(one.offset_from(first_of_one + 7), Some(7));
    }

    #[test]
    fn offsets_outside_the_span_have_no_position() {
        let two = Generation::new(2).expect("in range");
        assert_eq!(two.position(-1), Err(OutOfSpan { offset: -1, generation: 2 }));
        assert_eq!(two.position(SPAN), Err(OutOfSpan { offset: SPAN, generation: 2 }));
        let last = Generation::new(MAX).expect("in range");
        assert_eq!(last.position(SPAN - 1), Ok(i64::from(MAX) * SPAN + SPAN - 1));
        assert_eq!(last.next(), None);
        assert_eq!(Generation::new(MAX + 1), None);
    }
}
