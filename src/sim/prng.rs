//! The simulator's randomness: integer only, so that a seed replays the same
//! world on any machine and any compiler (no floating point anywhere).

use std::fmt;

/// A probability, in parts per million: `Probability::percent(1)` is one
/// chance in a hundred. Integer, so that draws replay exactly everywhere.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Probability(u32);

impl Probability {
    /// Never.
    pub const NEVER: Probability = Probability(0);
    /// Always.
    pub const ALWAYS: Probability = Probability(PPM);

    /// `ppm` chances in a million, capped at a million.
    pub const fn ppm(ppm: u32) -> Probability {
        Probability(if ppm > PPM { PPM } else { ppm })
    }

    /// `percent` chances in a hundred, capped at a hundred.
    pub const fn percent(percent: u32) -> Probability {
        Probability::ppm(if percent > 100 { PPM } else { percent * 10_000 })
    }

    /// The probability in parts per million.
    pub const fn as_ppm(self) -> u32 {
        self.0
    }

    /// Whether this can never happen.
    pub const fn is_never(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for Probability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ppm", self.0)
    }
}

const PPM: u32 = 1_000_000;

/// SplitMix64: expands one seed into independent sub-seeds.
pub(crate) fn split_mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    mix(*state)
}

/// SplitMix64's finalizer: a strong 64-bit mixing function.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256++: small, fast, and good enough for simulation.
#[derive(Clone, Debug)]
pub struct Prng {
    state: [u64; 4],
}

impl Prng {
    /// A generator seeded from `seed` through SplitMix64, as xoshiro's
    /// authors advise (an all-zero state is impossible this way).
    pub fn new(seed: u64) -> Prng {
        let mut splitter = seed;
        Prng {
            state: [
                split_mix(&mut splitter),
                split_mix(&mut splitter),
                split_mix(&mut splitter),
                split_mix(&mut splitter),
            ],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.state;
        let result = s0.wrapping_add(*s3).rotate_left(23).wrapping_add(*s0);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// A uniform integer in `0..bound` (`0` for a zero bound), without
    /// modulo bias (Lemire's multiply-shift with rejection).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            let low = product as u64;
            if low >= bound.wrapping_neg() % bound {
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniform integer in `low..=high`.
    pub fn range_inclusive(&mut self, low: u64, high: u64) -> u64 {
        debug_assert!(low <= high);
        low + self.below(high - low + 1)
    }

    /// Whether an event of probability `probability` happens.
    pub fn chance(&mut self, probability: Probability) -> bool {
        probability.0 > 0 && self.below(u64::from(PPM)) < u64::from(probability.0)
    }

    /// An exponentially distributed duration with mean `mean_ns`, computed
    /// in integers: `-ln(U) * mean`, with `ln` from a fixed-point `log2`.
    pub fn exponential(&mut self, mean_ns: u64) -> u64 {
        // U in (0, 1] as u / 2^32 with u in 1..=2^32.
        let u = self.below(1 << 32) + 1;
        let neg_ln_fixed16 = neg_ln_fixed16(u);
        ((u128::from(mean_ns) * u128::from(neg_ln_fixed16)) >> 16) as u64
    }

    /// Picks one element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// `-ln(u / 2^32)` in 16.16 fixed point, for `u` in `1..=2^32`.
fn neg_ln_fixed16(u: u64) -> u64 {
    debug_assert!((1..=1 << 32).contains(&u));
    // log2(u) = integer part + fraction, the fraction by repeated squaring
    // of the mantissa (one bit per squaring).
    let integer = 63 - u64::from(u.leading_zeros());
    let mut mantissa = u << (31 - integer.min(31)) >> integer.saturating_sub(31); // in [2^31, 2^32)
    let mut fraction = 0u64;
    for bit in (0..16).rev() {
        mantissa = (mantissa * mantissa) >> 31;
        if mantissa >= 1 << 32 {
            mantissa >>= 1;
            fraction |= 1 << bit;
        }
    }
    let log2_fixed16 = (integer << 16) | fraction;
    let neg_log2_fixed16 = (32 << 16) - log2_fixed16;
    // ln(x) = log2(x) * ln(2); ln(2) * 2^16 = 45426.09.
    (neg_log2_fixed16 * 45_426) >> 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_different_seeds_differ() {
        let mut a = Prng::new(7);
        let mut b = Prng::new(7);
        let mut c = Prng::new(8);
        let a: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let b: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let c: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut prng = Prng::new(1);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let value = prng.below(10);
            assert!(value < 10);
            seen[value as usize] = true;
        }
        assert!(seen.iter().all(|&seen| seen));
        assert_eq!(prng.below(0), 0);
    }

    #[test]
    fn neg_ln_matches_known_values() {
        // -ln(1) = 0; -ln(1/2) = 0.693; -ln(2^-32) = 22.18.
        assert_eq!(neg_ln_fixed16(1 << 32), 0);
        let half = neg_ln_fixed16(1 << 31);
        assert!((45_400..45_450).contains(&half), "{half}");
        let smallest = neg_ln_fixed16(1);
        assert!((1_453_000..1_454_000).contains(&smallest), "{smallest}");
        let quarter = neg_ln_fixed16(3 << 30); // -ln(0.75) = 0.2877
        assert!((18_800..18_900).contains(&quarter), "{quarter}");
    }

    #[test]
    fn exponential_has_about_the_right_mean() {
        let mut prng = Prng::new(3);
        let samples = 100_000;
        let total: u64 = (0..samples).map(|_| prng.exponential(1_000)).sum();
        let mean = total / samples;
        assert!((950..1050).contains(&mean), "mean {mean}");
    }

    #[test]
    fn chance_respects_the_extremes_and_the_middle() {
        let mut prng = Prng::new(5);
        assert!((0..1000).all(|_| !prng.chance(Probability::NEVER)));
        assert!((0..1000).all(|_| prng.chance(Probability::ALWAYS)));
        let hits = (0..100_000)
            .filter(|_| prng.chance(Probability::percent(10)))
            .count();
        assert!((9_000..11_000).contains(&hits), "{hits}");
    }
}
