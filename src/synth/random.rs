//! Randomness that is identical on every platform: each member's own RNG, and the draws the
//! generator makes from it (Poisson counts, weighted choices, days, amounts). Output depends on
//! the order of draws, so callers keep it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(super) fn member_rng(seed: u64, index: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ splitmix64(index as u64))
}

/// e^-x for x >= 0 from + - * / only: those are correctly rounded everywhere, whereas the
/// platform libm's `exp` may differ in the last bit and change a sampled count.
fn exp_neg(x: f64) -> f64 {
    let mut y = x.max(0.0);
    let mut halvings = 0;
    while y > 0.5 {
        y /= 2.0;
        halvings += 1;
    }
    let (mut term, mut sum) = (1.0, 1.0);
    for n in 1..20 {
        term *= -y / f64::from(n);
        sum += term;
    }
    for _ in 0..halvings {
        sum *= sum;
    }
    sum
}

/// A Poisson count (Knuth's method, in chunks so that large means do not underflow).
pub(super) fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u32 {
    let mut left = mean;
    let mut total = 0;
    while left > 0.0 {
        let chunk = left.min(20.0);
        left -= chunk;
        let limit = exp_neg(chunk);
        let mut p: f64 = rng.random();
        while p > limit {
            total += 1;
            p *= rng.random::<f64>();
        }
    }
    total
}

/// A weighted choice.
pub(super) fn pick<T: Clone>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut r = rng.random_range(0..total);
    for (item, w) in items {
        if r < *w {
            return item.clone();
        }
        r -= w;
    }
    items[items.len() - 1].0.clone()
}

/// A day in `lo..=hi` (`lo` when the range is empty).
pub(super) fn day_in(rng: &mut ChaCha8Rng, lo: i32, hi: i32) -> i32 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

pub(super) fn money(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> f64 {
    cents(lo + (hi - lo) * rng.random::<f64>())
}

pub(super) fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_is_about_right() {
        let mut rng = member_rng(7, 7);
        let n = 20_000;
        let total: u32 = (0..n).map(|_| poisson(&mut rng, 3.5)).sum();
        let mean = f64::from(total) / f64::from(n);
        assert!((3.4..3.6).contains(&mean), "{mean}");
        assert!((exp_neg(1.0) - 0.367_879_441_171_442_3).abs() < 1e-15);
        assert!((exp_neg(20.0) - 2.061_153_622_438_558e-9).abs() < 1e-20);
    }
}
