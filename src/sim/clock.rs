//! Each node's clocks, as TigerBeetle's VOPR models them: one oscillator
//! per node that runs fast or slow (drift), read as a monotonic clock that
//! restarts at every boot, and as a wall clock with an offset that an NTP
//! step or an operator can move, backward too.
//!
//! All of it is integer and a pure function of the world's time, so a seed
//! replays exactly. With the knobs at zero (`without_faults`), a node's
//! monotonic clock is the world's clock and its wall clock is the world's
//! clock read from the wall epoch, as before clocks were per node.

use super::options::ClockOptions;
use super::prng::{Prng, Probability};

/// The simulated world's clock starts here, not at zero, so that nothing
/// can mistake a time for "unset".
pub(crate) const EPOCH_NS: u64 = 1_000_000_000;
/// What a node's wall clock reads at the world's start: 2026-01-01T00:00:00Z.
pub(crate) const WALL_EPOCH_NS: u64 = 1_767_225_600 * 1_000_000_000;

const PPM: i128 = 1_000_000;

/// One node's clocks.
#[derive(Clone, Debug)]
pub(crate) struct NodeClock {
    /// How much faster than the world's clock this node's oscillator runs,
    /// in parts per million (negative: slower).
    drift_ppm: i64,
    /// Added to the oscillator's reading to give the monotonic clock; set
    /// at each boot.
    monotonic_offset_ns: i128,
    /// Added to the oscillator's reading (from the wall epoch) to give the
    /// wall clock; moved by steps.
    wall_offset_ns: i128,
}

impl NodeClock {
    /// A node's clocks, drawn from `options`; booted at world time `now_ns`.
    pub(crate) fn new(options: &ClockOptions, prng: &mut Prng, now_ns: u64) -> NodeClock {
        let max_ppm = i64::from(options.drift_ppm_max);
        let drift_ppm = prng.below(2 * max_ppm as u64 + 1) as i64 - max_ppm;
        let wall_max = options.wall_offset_max_ns;
        let wall_offset_ns = prng.below(2 * wall_max + 1) as i128 - i128::from(wall_max);
        let mut clock = NodeClock {
            drift_ppm,
            monotonic_offset_ns: 0,
            wall_offset_ns,
        };
        clock.boot(options, prng, now_ns);
        clock
    }

    /// A boot (a restart after a crash): the monotonic clock starts over at
    /// a random reading, at least `EPOCH_NS`. With no offset configured it
    /// keeps reading the world's clock.
    pub(crate) fn boot(&mut self, options: &ClockOptions, prng: &mut Prng, now_ns: u64) {
        if options.monotonic_offset_max_ns == 0 {
            self.monotonic_offset_ns = 0;
            return;
        }
        let reading_ns = EPOCH_NS + prng.below(options.monotonic_offset_max_ns + 1);
        self.monotonic_offset_ns = i128::from(reading_ns) - self.oscillator_ns(now_ns);
        assert_eq!(self.monotonic_ns(now_ns), reading_ns);
    }

    /// The oscillator at world time `world_ns`: `EPOCH_NS` at the world's
    /// start, then running `drift_ppm` fast.
    fn oscillator_ns(&self, world_ns: u64) -> i128 {
        let elapsed = i128::from(world_ns.saturating_sub(EPOCH_NS));
        i128::from(EPOCH_NS) + elapsed * (PPM + i128::from(self.drift_ppm)) / PPM
    }

    /// The monotonic clock at world time `world_ns`.
    pub(crate) fn monotonic_ns(&self, world_ns: u64) -> u64 {
        let reading = self.oscillator_ns(world_ns) + self.monotonic_offset_ns;
        reading.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// The wall clock at world time `world_ns`, in nanoseconds since the Unix epoch.
    pub(crate) fn wall_ns(&self, world_ns: u64) -> u64 {
        let since_start = self.oscillator_ns(world_ns) - i128::from(EPOCH_NS);
        let reading = i128::from(WALL_EPOCH_NS) + since_start + self.wall_offset_ns;
        reading.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// The earliest world time at which the monotonic clock reads at least
    /// `monotonic_ns`: when a timer set for that reading is due.
    pub(crate) fn world_ns_at(&self, monotonic_ns: u64) -> u64 {
        if monotonic_ns == u64::MAX {
            return u64::MAX;
        }
        let oscillator = i128::from(monotonic_ns) - self.monotonic_offset_ns;
        let elapsed = (oscillator - i128::from(EPOCH_NS)).max(0);
        let rate = PPM + i128::from(self.drift_ppm);
        // The inverse of `oscillator_ns`, rounded up.
        let world = i128::from(EPOCH_NS) + (elapsed * PPM + rate - 1) / rate;
        let world = world.clamp(0, i128::from(u64::MAX)) as u64;
        assert!(world == u64::MAX || self.monotonic_ns(world) >= monotonic_ns);
        world
    }

    /// A wall-clock step (NTP, an operator) of up to `max_ns` either way.
    pub(crate) fn step_wall(&mut self, max_ns: u64, prng: &mut Prng) -> i128 {
        let magnitude = i128::from(prng.range_inclusive(1, max_ns.max(1)));
        let step = if prng.chance(Probability::percent(50)) {
            -magnitude
        } else {
            magnitude
        };
        let before = self.wall_offset_ns;
        self.wall_offset_ns += step;
        assert_ne!(self.wall_offset_ns, before, "a step moves the wall clock");
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ClockOptions {
        ClockOptions {
            drift_ppm_max: 500,
            monotonic_offset_max_ns: 3_600_000_000_000,
            wall_offset_max_ns: 1_000_000_000,
            wall_jump_interval_mean_ns: 0,
            wall_jump_max_ns: 0,
        }
    }

    #[test]
    fn without_knobs_the_clocks_are_the_world_s() {
        let mut prng = Prng::new(1);
        let clock = NodeClock::new(&ClockOptions::none(), &mut prng, EPOCH_NS);
        for world_ns in [EPOCH_NS, EPOCH_NS + 1, 7_000_000_123] {
            assert_eq!(clock.monotonic_ns(world_ns), world_ns);
            assert_eq!(clock.wall_ns(world_ns), WALL_EPOCH_NS + world_ns - EPOCH_NS);
            assert_eq!(clock.world_ns_at(world_ns), world_ns);
        }
    }

    #[test]
    fn the_inverse_is_the_earliest_world_time_that_reads_the_deadline() {
        for seed in 0..200 {
            let mut prng = Prng::new(seed);
            let clock = NodeClock::new(&options(), &mut prng, EPOCH_NS + seed * 1_000);
            let start = clock.monotonic_ns(EPOCH_NS + seed * 1_000);
            for step in [0, 1, 999, 1_000_000, 123_456_789_012] {
                let deadline = start + step;
                let world = clock.world_ns_at(deadline);
                assert!(clock.monotonic_ns(world) >= deadline, "seed {seed}");
                if world > EPOCH_NS {
                    let before = clock.monotonic_ns(world - 1);
                    assert!(before < deadline, "seed {seed}: not the earliest");
                }
            }
        }
    }

    #[test]
    fn a_boot_restarts_the_monotonic_clock_and_keeps_the_wall_clock() {
        let mut prng = Prng::new(3);
        let mut clock = NodeClock::new(&options(), &mut prng, EPOCH_NS);
        let now_ns = EPOCH_NS + 50_000_000_000;
        let wall_before = clock.wall_ns(now_ns);
        let monotonic_before = clock.monotonic_ns(now_ns);
        clock.boot(&options(), &mut prng, now_ns);
        assert_eq!(clock.wall_ns(now_ns), wall_before);
        assert_ne!(clock.monotonic_ns(now_ns), monotonic_before);
        assert!(clock.monotonic_ns(now_ns) >= EPOCH_NS);
    }
}
