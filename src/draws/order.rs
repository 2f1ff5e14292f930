//! The drawn order: a uniformly random permutation of the registrations,
//! fully determined by the seed from [`super::seed`].
//!
//! This module owns the byte stream and the shuffle. A verifier reimplements
//! it exactly as follows.
//!
//! # Byte stream
//!
//! Block `i` (for `i = 0, 1, 2, ...`) is `SHA-256(seed || be64(i))`: the 32
//! seed bytes followed by `i` as 8 bytes big-endian, 40 bytes hashed. The
//! stream is block 0, block 1, ... concatenated. [`Stream::next_u64`] takes
//! the next 8 unused bytes of the stream as a big-endian `u64` (blocks hold
//! exactly 4 of them, so a value never straddles two blocks).
//!
//! # Unbiased integer below `n` (`n >= 1`)
//!
//! Let `M = 2^64 - 1` and `zone = M - (M mod n)`. Draw `v = next_u64()`;
//! if `v < zone` the result is `v mod n`, otherwise discard `v` and draw
//! again. `zone` is a multiple of `n` (it is `2^64 - (2^64 mod n)`, or
//! `2^64 - n` when `n` divides `2^64`), so every residue is hit by exactly
//! `zone / n` accepted values. A rejection has probability below
//! `n / 2^64`, so in practice each call consumes one `u64`, but a verifier
//! must implement the loop for the results to match.
//!
//! # Permutation of `n` registrations
//!
//! Fisher–Yates in Durstenfeld's form: start with `order = [0, 1, ..., n-1]`;
//! for `i` from `n-1` down to `1`: `j = below(i + 1)`, swap `order[i]` and
//! `order[j]`. For `n <= 1` nothing is drawn. `order[k]` is the index, in the
//! id-sorted canonical list, of the registration drawn `k`-th (0-based), so
//! it gets position `k + 1`.

use super::seed::{Registration, sorted_by_id};
use sha2::{Digest, Sha256};

/// The deterministic byte stream derived from a seed.
#[derive(Debug, Clone)]
pub struct Stream {
    seed: [u8; 32],
    next_block: u64,
    block: [u8; 32],
    used: usize,
}

impl Stream {
    pub fn new(seed: &[u8; 32]) -> Self {
        Stream {
            seed: *seed,
            next_block: 0,
            block: [0; 32],
            // Start "exhausted" so the first read computes block 0.
            used: 32,
        }
    }

    /// The next 8 stream bytes, big-endian.
    pub fn next_u64(&mut self) -> u64 {
        if self.used + 8 > self.block.len() {
            let mut hasher = Sha256::new();
            hasher.update(self.seed);
            hasher.update(self.next_block.to_be_bytes());
            self.block = hasher.finalize().into();
            // 2^64 blocks are unreachable; wrapping only avoids a panic path.
            self.next_block = self.next_block.wrapping_add(1);
            self.used = 0;
        }
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.block[self.used..self.used + 8]);
        self.used += 8;
        u64::from_be_bytes(bytes)
    }

    /// Uniform in `0..n` by rejection sampling (see the module doc).
    ///
    /// `n == 0` is a caller bug: it returns 0 without reading the stream
    /// rather than panicking inside a draw.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            debug_assert!(n > 0, "below(0) has no valid result");
            return 0;
        }
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }
}

/// The drawn order of `n` registrations: `order[k]` is the id-sorted index
/// of the registration drawn `k`-th (see the module doc for the algorithm).
pub fn permutation(seed: &[u8; 32], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut stream = Stream::new(seed);
    for i in (1..n).rev() {
        // usize fits in u64 on every platform Rust supports, and j <= i.
        let j = stream.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// The registrations in drawn order: sorts them as the published list does,
/// then applies [`permutation`], so callers cannot pair the permutation with
/// a differently sorted list.
pub fn drawn_order<'a>(regs: &'a [Registration], seed: &[u8; 32]) -> Vec<&'a Registration> {
    let sorted = sorted_by_id(regs);
    permutation(seed, sorted.len())
        .into_iter()
        .map(|i| sorted[i])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_seed(k: u64) -> [u8; 32] {
        Sha256::digest(k.to_be_bytes()).into()
    }

    fn is_permutation(order: &[usize]) -> bool {
        let mut seen = vec![false; order.len()];
        for &i in order {
            if i >= order.len() || seen[i] {
                return false;
            }
            seen[i] = true;
        }
        true
    }

    #[test]
    fn stream_known_answer() {
        // First 8 bytes of SHA-256(32 zero bytes || be64(0)), and of block 1,
        // computed independently with Python's hashlib.
        let mut s = Stream::new(&[0; 32]);
        assert_eq!(s.next_u64(), 0x2c34_ce1d_f23b_838c);
        for _ in 0..3 {
            s.next_u64();
        }
        assert_eq!(s.next_u64(), 0x08e0_0266_fff0_aacc);
    }

    #[test]
    fn below_stays_in_range() {
        let mut s = Stream::new(&test_seed(1));
        for n in 1..=50u64 {
            for _ in 0..20 {
                assert!(s.below(n) < n);
            }
        }
        assert_eq!(s.below(1), 0);
        assert!(s.below(u64::MAX) < u64::MAX);
    }

    #[test]
    fn permutation_is_deterministic() {
        for k in 0..20 {
            assert_eq!(
                permutation(&test_seed(k), 30),
                permutation(&test_seed(k), 30)
            );
        }
    }

    #[test]
    fn different_seeds_give_different_orders() {
        let orders: Vec<Vec<usize>> = (0..20).map(|k| permutation(&test_seed(k), 30)).collect();
        for a in 0..orders.len() {
            for b in a + 1..orders.len() {
                assert_ne!(orders[a], orders[b], "seeds {a} and {b}");
            }
        }
    }

    #[test]
    fn permutation_is_a_permutation() {
        for n in 0..40 {
            let order = permutation(&test_seed(n as u64), n);
            assert_eq!(order.len(), n);
            assert!(is_permutation(&order), "n={n}: {order:?}");
        }
    }

    #[test]
    fn permutation_of_zero_and_one() {
        assert_eq!(permutation(&test_seed(0), 0), Vec::<usize>::new());
        assert_eq!(permutation(&test_seed(0), 1), vec![0]);
    }

    // Fixed answers from an independent Python reimplementation of the
    // module doc; any change of stream, sampling or shuffle breaks them.
    #[test]
    fn permutation_known_answer() {
        assert_eq!(
            permutation(&[0; 32], 10),
            vec![7, 6, 9, 5, 4, 2, 3, 1, 0, 8]
        );
        assert_eq!(
            permutation(&test_seed(42), 12),
            vec![3, 0, 11, 6, 10, 9, 8, 1, 4, 5, 7, 2]
        );
    }

    #[test]
    fn drawn_order_uses_id_sorted_list() {
        let regs: Vec<Registration> = [30, 10, 20]
            .iter()
            .map(|&id| Registration {
                id,
                pseudonym: format!("P{id}"),
                quantity: 1,
                choices: vec![1],
            })
            .collect();
        let seed = test_seed(7);
        let sorted_ids = [10, 20, 30];
        let expected: Vec<i64> = permutation(&seed, 3)
            .into_iter()
            .map(|i| sorted_ids[i])
            .collect();
        let got: Vec<i64> = drawn_order(&regs, &seed).iter().map(|r| r.id).collect();
        assert_eq!(got, expected);
        let mut reversed = regs.clone();
        reversed.reverse();
        let again: Vec<i64> = drawn_order(&reversed, &seed).iter().map(|r| r.id).collect();
        assert_eq!(again, expected, "caller order must not matter");
    }

    // ---- Uniformity -------------------------------------------------------
    //
    // 2,000 draws of n = 8 with seeds SHA-256(be64(draw number)). Table
    // cell [r][p] counts how often registration r landed at position p;
    // each cell expects 2000 / 8 = 250.
    //
    // Statistics and their null distributions for a uniform shuffle:
    // - one row (or one column) is multinomial(2000, 1/8 each), so its
    //   Pearson statistic is chi-square with 7 df;
    // - the whole table is NOT plain chi-square with 49 df: a single random
    //   permutation matrix has covariance (1/(n-1)) P, where P projects onto
    //   the (n-1)^2-dimensional space with zero row and column sums, so the
    //   Pearson sum over all cells is n/(n-1) times chi-square with
    //   (n-1)^2 df. We test (n-1)/n * X^2 against 49 df.
    //
    // Multiple comparisons: two pre-specified primary tests, the whole table
    // and the first position (who is served first matters most), each at
    // p > 0.001; then all 8 rows and 8 columns at Bonferroni p > 0.001/16.
    // Family-wise false-alarm rate <= 0.003. The seeds are fixed, so the test
    // is deterministic: the p-values only calibrate how strong a bias has to
    // be to fail it; `uniformity_check_detects_biased_shuffles` shows it has
    // teeth.

    const N: usize = 8;
    const DRAWS: u64 = 2000;

    fn position_table(shuffle: impl Fn(&[u8; 32], usize) -> Vec<usize>) -> [[u64; N]; N] {
        let mut table = [[0u64; N]; N];
        for draw in 0..DRAWS {
            for (pos, &r) in shuffle(&test_seed(draw), N).iter().enumerate() {
                table[r][pos] += 1;
            }
        }
        table
    }

    fn pearson(observed: impl Iterator<Item = u64>, expected: f64) -> f64 {
        observed
            .map(|o| {
                let d = o as f64 - expected;
                d * d / expected
            })
            .sum()
    }

    struct Uniformity {
        rows: Vec<f64>,
        cols: Vec<f64>,
        whole: f64,
    }

    fn uniformity_p_values(table: &[[u64; N]; N]) -> Uniformity {
        let expected = DRAWS as f64 / N as f64;
        let df_line = (N - 1) as f64;
        let rows = (0..N)
            .map(|r| chi2_sf(pearson(table[r].iter().copied(), expected), df_line))
            .collect();
        let cols = (0..N)
            .map(|p| chi2_sf(pearson((0..N).map(|r| table[r][p]), expected), df_line))
            .collect();
        let total = pearson(table.iter().flatten().copied(), expected);
        let scaled = total * (N - 1) as f64 / N as f64;
        let whole = chi2_sf(scaled, ((N - 1) * (N - 1)) as f64);
        Uniformity { rows, cols, whole }
    }

    fn passes(u: &Uniformity) -> bool {
        let bonferroni = 0.001 / (2 * N) as f64;
        u.whole > 0.001
            && u.cols[0] > 0.001
            && u.rows.iter().chain(&u.cols).all(|&p| p > bonferroni)
    }

    #[test]
    fn permutation_is_uniform() {
        let table = position_table(permutation);
        for row in &table {
            assert_eq!(row.iter().sum::<u64>(), DRAWS);
        }
        let u = uniformity_p_values(&table);
        assert!(
            passes(&u),
            "table {table:?}\nwhole p={}\nfirst position p={}\nrows p={:?}\ncols p={:?}",
            u.whole,
            u.cols[0],
            u.rows,
            u.cols
        );
    }

    #[test]
    fn uniformity_check_detects_biased_shuffles() {
        // The two classic Fisher–Yates mistakes. Sattolo's off-by-one
        // (j = below(i)) only yields cyclic permutations, so nobody keeps
        // their own index; the naive shuffle (j = below(n) at every step)
        // has n^n equally likely paths onto n! orders, which cannot be even.
        let sattolo = |seed: &[u8; 32], n: usize| {
            let mut order: Vec<usize> = (0..n).collect();
            let mut s = Stream::new(seed);
            for i in (1..n).rev() {
                let j = s.below(i as u64) as usize;
                order.swap(i, j);
            }
            order
        };
        let naive = |seed: &[u8; 32], n: usize| {
            let mut order: Vec<usize> = (0..n).collect();
            let mut s = Stream::new(seed);
            for i in (0..n).rev() {
                let j = s.below(n as u64) as usize;
                order.swap(i, j);
            }
            order
        };
        assert!(!passes(&uniformity_p_values(&position_table(sattolo))));
        assert!(!passes(&uniformity_p_values(&position_table(naive))));
    }

    // ---- Chi-square tail via the regularized upper incomplete gamma -------

    /// P(X > x) for X chi-square with `df` degrees of freedom.
    fn chi2_sf(x: f64, df: f64) -> f64 {
        gamma_q(df / 2.0, x / 2.0)
    }

    /// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; ~1e-15 relative).
    fn ln_gamma(x: f64) -> f64 {
        const G: f64 = 7.0;
        const C: [f64; 9] = [
            0.999_999_999_999_809_9,
            676.520_368_121_885_1,
            -1_259.139_216_722_402_8,
            771.323_428_777_653_1,
            -176.615_029_162_140_6,
            12.507_343_278_686_905,
            -0.138_571_095_265_720_12,
            9.984_369_578_019_572e-6,
            1.505_632_735_149_311_6e-7,
        ];
        if x < 0.5 {
            // Reflection keeps the series in its accurate range.
            let pi = std::f64::consts::PI;
            return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
        }
        let x = x - 1.0;
        let mut a = C[0];
        for (i, &c) in C.iter().enumerate().skip(1) {
            a += c / (x + i as f64);
        }
        let t = x + G + 0.5;
        0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
    }

    /// Q(a, x) = Γ(a, x) / Γ(a): series for P when x < a + 1, Lentz's
    /// continued fraction for Q otherwise (Numerical Recipes §6.2).
    fn gamma_q(a: f64, x: f64) -> f64 {
        if x <= 0.0 {
            return 1.0;
        }
        let prefactor = (-x + a * x.ln() - ln_gamma(a)).exp();
        if x < a + 1.0 {
            let mut term = 1.0 / a;
            let mut sum = term;
            let mut ap = a;
            for _ in 0..1000 {
                ap += 1.0;
                term *= x / ap;
                sum += term;
                if term.abs() < sum.abs() * 1e-16 {
                    break;
                }
            }
            1.0 - sum * prefactor
        } else {
            let tiny = 1e-300;
            let mut b = x + 1.0 - a;
            let mut c = 1.0 / tiny;
            let mut d = 1.0 / b;
            let mut h = d;
            for i in 1..1000 {
                let an = -(i as f64) * (i as f64 - a);
                b += 2.0;
                d = an * d + b;
                if d.abs() < tiny {
                    d = tiny;
                }
                c = b + an / c;
                if c.abs() < tiny {
                    c = tiny;
                }
                d = 1.0 / d;
                let delta = d * c;
                h *= delta;
                if (delta - 1.0).abs() < 1e-16 {
                    break;
                }
            }
            h * prefactor
        }
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs()
    }

    #[test]
    fn chi2_tail_matches_reference_values() {
        // df = 2 has the closed form exp(-x/2).
        for x in [0.1, 1.0, 2.0, 5.0, 20.0] {
            assert!(close(chi2_sf(x, 2.0), (-x / 2.0_f64).exp(), 1e-12), "x={x}");
        }
        // Published 0.999 quantiles: chi2(7) 24.322, chi2(49) 85.351.
        assert!(close(chi2_sf(24.321_886, 7.0), 0.001, 1e-5));
        assert!(close(chi2_sf(85.350_565, 49.0), 0.001, 1e-5));
        // Values from the half-integer closed form
        // Q(k + 1/2, y) = erfc(sqrt y) + e^-y sum_{j=1..k} y^(j-1/2)/Γ(j+1/2),
        // evaluated independently in Python.
        assert!(close(chi2_sf(7.0, 7.0), 0.428_879_857_553_054_74, 1e-10));
        assert!(close(chi2_sf(29.9, 7.0), 9.905_498_902_088_256e-5, 1e-8));
        assert!(close(chi2_sf(49.0, 49.0), 0.473_128_295_654_765_3, 1e-10));
        assert!(close(chi2_sf(120.0, 49.0), 6.876_961_427_062_866e-8, 1e-8));
        assert!(close(chi2_sf(0.5, 1.0), 0.479_500_122_186_953_5, 1e-10));
    }
}
