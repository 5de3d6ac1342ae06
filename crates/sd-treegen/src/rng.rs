//! The generator's randomness: a seeded xoshiro256** stream and the few distributions the tree
//! model draws from.
//!
//! Everything here is plain integer arithmetic or IEEE-754 `+ - * /` (correctly rounded on every
//! platform); `exp2` and `log2` are series written out below rather than the platform's libm, whose
//! last bits may differ between C libraries. So a seed gives the same tree on any machine.

/// xoshiro256** (Blackman and Vigna), seeded through splitmix64.
pub(crate) struct Rng {
    s: [u64; 4],
}

/// splitmix64's output function: a strong 64-bit mixer, also used to derive content offsets.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A stream for `seed`; `stream` separates independent streams drawn from one seed.
    pub(crate) fn new(seed: u64, stream: u64) -> Rng {
        let mut x = seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03);
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            mix64(x)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2^-40 for any n we use).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below((hi - lo + 1) as usize) as u64
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub(crate) fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// An index drawn with probability proportional to its weight, given cumulative weights.
    pub(crate) fn weighted(&mut self, cumulative: &[f64]) -> usize {
        let total = *cumulative.last().expect("weights");
        let x = self.unit() * total;
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len() - 1)
    }

    pub(crate) fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            xs.swap(i, self.below(i + 1));
        }
    }

    /// Standard normal, approximated by the Irwin–Hall sum of twelve uniforms (tails cut at ±6σ,
    /// which a file-size model never misses).
    pub(crate) fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }

    /// Log-normal with the given median and shape σ (of the natural logarithm).
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * exp2(sigma * self.normal() * std::f64::consts::LOG2_E)
    }

    /// Log-uniform in `[lo, hi)`: every doubling of size equally likely.
    pub(crate) fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let (a, b) = (log2(lo), log2(hi));
        exp2(a + (b - a) * self.unit())
    }
}

/// 2^x from basic arithmetic: 2^floor(x) exactly, times e^(f·ln 2) by its Taylor series
/// (f in [0, 1), 20 terms: error far below one ulp).
pub(crate) fn exp2(x: f64) -> f64 {
    let n = x.floor();
    let y = (x - n) * std::f64::consts::LN_2;
    let (mut term, mut sum) = (1.0f64, 1.0f64);
    for k in 1..20 {
        term *= y / f64::from(k);
        sum += term;
    }
    let n = n as i64;
    assert!((-1000..1000).contains(&n), "exp2 out of range: {x}");
    sum * f64::from_bits(((n + 1023) as u64) << 52)
}

/// log2(x) for x > 0 from basic arithmetic: the binary exponent, plus ln(m) for the mantissa m in
/// [1, 2) as 2·atanh((m−1)/(m+1)) by its series.
pub(crate) fn log2(x: f64) -> f64 {
    assert!(x.is_normal() && x > 0.0, "log2 of {x}");
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let (mut p, mut sum) = (t, 0.0f64);
    for k in 0..30 {
        sum += p / f64::from(2 * k + 1);
        p *= t2;
    }
    e as f64 + 2.0 * sum * std::f64::consts::LOG2_E
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp2_and_log2_agree_with_libm() {
        for &x in &[-3.7, -0.5, 0.0, 0.25, 1.0, 3.3, 12.0, 13.584_962_5, 25.64] {
            let (ours, std) = (exp2(x), x.exp2());
            assert!(
                (ours - std).abs() <= std * 1e-14,
                "exp2({x}): {ours} vs {std}"
            );
        }
        for &x in &[0.3, 1.0, 1.5, 2.0, 3072.0, 12_288.0, 65_536.0, 52_428_800.0] {
            let (ours, std) = (log2(x), x.log2());
            assert!((ours - std).abs() <= 1e-13, "log2({x}): {ours} vs {std}");
        }
    }

    #[test]
    fn streams_are_seeded_and_distinct() {
        let draw = |seed, stream| {
            let mut r = Rng::new(seed, stream);
            (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(42, 0), draw(42, 0));
        assert_ne!(draw(42, 0), draw(43, 0));
        assert_ne!(draw(42, 0), draw(42, 1));
    }

    #[test]
    fn distributions_stay_in_range() {
        let mut r = Rng::new(7, 0);
        for _ in 0..10_000 {
            assert!(r.below(5) < 5);
            assert!((3..=9).contains(&r.between(3, 9)));
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            let z = r.log_uniform(65_536.0, 1_048_576.0);
            assert!((65_536.0..=1_048_576.0).contains(&z), "{z}");
            assert!(r.weighted(&[1.0, 1.0, 5.0]) < 3);
        }
        let mean = (0..20_000).map(|_| r.normal()).sum::<f64>() / 20_000.0;
        assert!(mean.abs() < 0.05, "{mean}");
    }
}
