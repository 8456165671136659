//! Retry delays with jitter, and the small random source behind them.
//!
//! Delays start near 1 s, double to a cap near 30 s, and each is scaled by a random
//! factor in [0.5, 1.5) so that a fleet of sidecars that lost the API server at the same
//! instant does not come back in lock-step. Pure arithmetic: it never sleeps itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// xorshift64*: tiny, fast, good enough for jitter (never for secrets).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock, the process id and an address, so that processes started at
    /// the same instant still differ.
    pub fn from_entropy() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let local = 0u8;
        let addr = &local as *const u8 as u64;
        Rng::new(nanos ^ (u64::from(std::process::id()) << 32) ^ addr.rotate_left(17))
    }

    pub fn new(seed: u64) -> Rng {
        // splitmix64 once, so that nearby seeds give unrelated streams; never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `d` scaled by a factor uniform in [lo, hi).
    pub fn scale(&mut self, d: Duration, lo: f64, hi: f64) -> Duration {
        d.mul_f64(lo + (hi - lo) * self.next_f64())
    }
}

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: Rng,
}

impl Backoff {
    /// 1 s doubling to 30 s.
    pub fn new(rng: Rng) -> Backoff {
        Backoff::with(Duration::from_secs(1), Duration::from_secs(30), rng)
    }

    pub fn with(base: Duration, cap: Duration, rng: Rng) -> Backoff {
        Backoff {
            base,
            cap,
            failures: 0,
            rng,
        }
    }

    /// The delay before the next attempt after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.cap);
        self.rng.scale(raw, 0.5, 1.5)
    }

    /// After a healthy stretch: the next failure waits about `base` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Rng::new(7));
        let bounds = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0];
        for want in bounds {
            let d = b.next_delay().as_secs_f64();
            assert!(d >= want * 0.5 && d < want * 1.5, "{d} for {want}");
        }
        b.reset();
        let d = b.next_delay().as_secs_f64();
        assert!((0.5..1.5).contains(&d), "{d}");
    }

    #[test]
    fn jitter_spreads_a_fleet() {
        // 100 clients failing at the same instant: no 100 ms window holds a quarter of them.
        let mut firsts: Vec<f64> = (0..100u64)
            .map(|i| Backoff::new(Rng::new(i)).next_delay().as_secs_f64())
            .collect();
        firsts.sort_by(|a, b| a.total_cmp(b));
        let worst = (0..firsts.len())
            .map(|i| {
                firsts[i..]
                    .iter()
                    .take_while(|x| **x < firsts[i] + 0.1)
                    .count()
            })
            .max()
            .unwrap();
        assert!(worst <= 25, "{worst} of 100 within 100 ms");
    }

    #[test]
    fn rng_is_uniform_enough() {
        let mut r = Rng::new(1);
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            buckets[(r.next_f64() * 10.0) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|n| (800..1200).contains(n)),
            "{buckets:?}"
        );
    }
}
