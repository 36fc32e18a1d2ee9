//! shaper.py's TokenBucket: the token bucket of RFC 2697 kept as one deadline (GCRA, ITU-T
//! I.371). `next_at` is when the bucket holds no debt; a packet leaving moves it on by its
//! cost over the rate, from no earlier than `now - slack` (a full bucket).

use super::pymax;

pub const BURST_MTUS: i64 = 2;

/// A rate that is neither positive nor None (shaper.py raises ValueError).
#[derive(Debug)]
pub struct RateError(pub f64);

pub struct TokenBucket {
    pub rate: Option<f64>,
    /// The rate was given as a Python int (the node's are): shown as one, as Python would.
    /// Presentation only: the arithmetic is the same, an int's float being exact here.
    pub int_rate: bool,
    pub per_packet_overhead: i64,
    mtu: i64,
    burst_time: f64,
    pub slack: f64,
    pub per_byte: f64,
    pub next_at: f64,
}

/// `not rate > 0` as shaper.py writes it: NaN is refused too.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn check(rate: Option<f64>) -> Result<(), RateError> {
    match rate {
        Some(r) if !(r > 0.0) => Err(RateError(r)),
        _ => Ok(()),
    }
}

impl TokenBucket {
    pub fn new(
        rate: Option<f64>,
        per_packet_overhead: i64,
        mtu: i64,
        burst_time: f64,
    ) -> Result<Self, RateError> {
        check(rate)?;
        let mut bucket = TokenBucket {
            rate: None,
            int_rate: false,
            per_packet_overhead,
            mtu,
            burst_time,
            slack: 0.0,
            per_byte: 0.0,
            next_at: f64::NEG_INFINITY,
        };
        bucket.set(rate);
        Ok(bucket)
    }

    fn set(&mut self, rate: Option<f64>) {
        self.rate = rate;
        match rate {
            None => {
                self.slack = 0.0;
                self.per_byte = 0.0;
            }
            Some(r) => {
                // max(BURST_MTUS * mtu, rate * burst_time) / rate: the int unless the float is larger
                self.slack = pymax((BURST_MTUS * self.mtu) as f64, r * self.burst_time) / r;
                self.per_byte = 1.0 / r;
            }
        }
    }

    pub fn consume(&mut self, size: i64, now: f64) {
        if self.rate.is_none() {
            return;
        }
        let start = now - self.slack;
        let next_at = self.next_at;
        self.next_at = (if next_at > start { next_at } else { start })
            + (size + self.per_packet_overhead) as f64 * self.per_byte;
    }

    pub fn set_rate(&mut self, rate: Option<f64>, now: f64) -> Result<(), RateError> {
        check(rate)?;
        let old = match (self.rate, rate) {
            (Some(old), Some(_)) => old,
            _ => {
                self.set(rate);
                self.next_at = f64::NEG_INFINITY;
                return Ok(());
            }
        };
        let start = now - self.slack;
        let credit = (now - pymax(self.next_at, start)) * old; // bytes; negative is debt
        self.set(rate);
        let new = rate.unwrap_or(old);
        self.next_at = pymax(now - credit / new, now - self.slack);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BURST_TIME: f64 = 0.004; // shaper.py's default (share.rs gives its own)

    #[test]
    fn paces_one_packet_per_cost_over_rate() {
        let mut b = TokenBucket::new(Some(1000.0), 0, 1500, BURST_TIME).unwrap();
        assert_eq!(b.slack, 3.0); // 2 MTU at 1000 B/s
        b.consume(1000, 10.0);
        assert_eq!(b.next_at, 10.0 - 3.0 + 1.0);
        assert!(TokenBucket::new(Some(0.0), 0, 1500, BURST_TIME).is_err());
        assert!(TokenBucket::new(Some(f64::NAN), 0, 1500, BURST_TIME).is_err());
    }
}
