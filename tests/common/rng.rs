//! xorshift64*: a small seeded generator, so every run of a test (or of
//! `examples/gen_records.rs`) draws the same numbers and a failure names
//! its case. Included by path (`#[path = "common/rng.rs"] mod rng;`) by the
//! binaries that need only this.
#![allow(dead_code)]

/// The generator; the `u64` is its state (any value but 0).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An index in `0..n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// Uniform in (0, 1), never 0 (a logarithm can take it).
    pub fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// About log-uniform over 1 ..= 10^decades.
    pub fn log_uniform(&mut self, decades: f64) -> f64 {
        let x = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        10f64.powf(x * decades)
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn draws_stay_in_their_ranges() {
        let mut rng = Rng(1);
        for _ in 0..10_000 {
            assert!(rng.below(7) < 7);
            assert!(rng.index(3) < 3);
            let u = rng.uniform();
            assert!(u > 0.0 && u < 1.0);
            let l = rng.log_uniform(2.0);
            assert!((1.0..=100.0).contains(&l));
        }
    }
}
