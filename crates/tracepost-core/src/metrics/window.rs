/// A log-bucketed latency sketch: quantiles with a relative error of at most 2 %.
///
/// Bucket `i` holds values in `(γ^(i-1), γ^i]` microseconds with γ = 1.04, so the range from
/// 1 µs to about 20 minutes fits in 525 counters, allocated on first use.
#[derive(Debug, Default, Clone)]
pub struct LatencySketch {
    counts: Vec<u32>,
    total: u64,
}

const GAMMA_LN: f64 = 0.039_220_713_153_281_3; // ln(1.04)
const BUCKETS: usize = 525;

impl LatencySketch {
    /// Records a latency in seconds.
    pub fn record(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        let micros = (seconds * 1e6).max(1.0);
        let i = ((micros.ln() / GAMMA_LN).ceil() as usize).min(BUCKETS - 1);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.total += 1;
    }

    /// The `q` quantile (0..=1) in seconds, or 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                // Midpoint (in relative terms) of the bucket's range.
                let upper = (i as f64 * GAMMA_LN).exp();
                return upper * 2.0 / (1.0 + 1.04) / 1e6;
            }
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut s = LatencySketch::default();
        for i in 1..=1000 {
            s.record(i as f64 / 1000.0); // 1 ms .. 1 s
        }
        for (q, exact) in [(0.5, 0.5), (0.95, 0.95), (0.99, 0.99)] {
            let got = s.quantile(q);
            assert!(
                (got - exact).abs() / exact <= 0.02,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(LatencySketch::default().quantile(0.5), 0.0);
    }
}
