//! The generic cell rate algorithm: one number per bucket, the theoretical arrival time (TAT)
//! of the next request. A request is allowed when moving the TAT one emission interval later
//! keeps it within `burst` intervals of now. `gcra.lua` is the same step, run inside Redis.

/// Microseconds, the unit of every time here (and in the Lua script).
pub const SECOND_US: i64 = 1_000_000;

/// One limit: a request every `interval_us` on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub interval_us: i64,
    pub burst: u32,
}

impl Quota {
    /// `None` for 0 (the settings' "unlimited").
    pub fn per_second(rate: u32, burst: u32) -> Option<Quota> {
        Self::per(rate, SECOND_US, burst)
    }

    pub fn per_minute(rate: u32, burst: u32) -> Option<Quota> {
        Self::per(rate, 60 * SECOND_US, burst)
    }

    fn per(rate: u32, period_us: i64, burst: u32) -> Option<Quota> {
        (rate > 0).then(|| Quota {
            interval_us: (period_us / i64::from(rate)).max(1),
            burst: burst.max(1),
        })
    }

    /// How far ahead of now the TAT may be after an allowed request.
    pub fn capacity_us(&self) -> i64 {
        self.interval_us * i64::from(self.burst)
    }
}

/// What one step did: whether the request was allowed, and how far the bucket's TAT is ahead
/// of now afterwards (the "used" part of the bucket, in time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    pub ahead_us: i64,
}

/// One request at `now_us` against a bucket whose TAT is `tat_us` (`None`: never used or
/// expired). Answers the outcome and the TAT to store (`None` when denied: nothing changes).
pub fn step(tat_us: Option<i64>, now_us: i64, quota: Quota) -> (Outcome, Option<i64>) {
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let next = tat + quota.interval_us;
    if next - now_us > quota.capacity_us() {
        (
            Outcome {
                allowed: false,
                ahead_us: tat - now_us,
            },
            None,
        )
    } else {
        (
            Outcome {
                allowed: true,
                ahead_us: next - now_us,
            },
            Some(next),
        )
    }
}

/// What the response headers say about one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `RateLimit-Limit`: the burst.
    pub limit: u32,
    /// `RateLimit-Remaining`: requests allowed right now.
    pub remaining: u32,
    /// `RateLimit-Reset`: seconds until the bucket is full again.
    pub reset_s: u64,
    /// `Retry-After` (denied only): seconds until the next request is allowed, at least 1.
    pub retry_after_s: Option<u64>,
}

impl Decision {
    pub fn new(outcome: Outcome, quota: Quota) -> Decision {
        let ahead = outcome.ahead_us.max(0);
        let free = (quota.capacity_us() - ahead).max(0);
        let remaining = (free / quota.interval_us).min(i64::from(quota.burst)) as u32;
        let retry_after_s = (!outcome.allowed).then(|| {
            let wait = ahead + quota.interval_us - quota.capacity_us();
            ceil_seconds(wait).max(1)
        });
        Decision {
            allowed: outcome.allowed,
            limit: quota.burst,
            remaining,
            reset_s: ceil_seconds(ahead),
            retry_after_s,
        }
    }
}

/// Rounded up, so a client that waits this long is never early.
fn ceil_seconds(us: i64) -> u64 {
    (us.max(0) as u64).div_ceil(SECOND_US as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000 * SECOND_US;

    fn run(quota: Quota, tat: &mut Option<i64>, now: i64) -> Decision {
        let (outcome, next) = step(*tat, now, quota);
        if next.is_some() {
            *tat = next;
        }
        Decision::new(outcome, quota)
    }

    #[test]
    fn a_full_bucket_allows_exactly_the_burst() {
        let quota = Quota::per_second(10, 5).unwrap();
        let mut tat = None;
        let remaining: Vec<u32> = (0..5).map(|_| run(quota, &mut tat, T0).remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        let denied = run(quota, &mut tat, T0);
        assert!(!denied.allowed);
        assert_eq!(denied.remaining, 0);
        // The next cell frees up one interval (100 ms) later: rounded up to 1 s.
        assert_eq!(denied.retry_after_s, Some(1));
        // Five intervals ahead = 500 ms until full, rounded up.
        assert_eq!(denied.reset_s, 1);
    }

    #[test]
    fn the_steady_rate_passes_and_faster_does_not() {
        let quota = Quota::per_second(10, 1).unwrap();
        let mut tat = None;
        for i in 0..100 {
            let d = run(quota, &mut tat, T0 + i * 100_000);
            assert!(d.allowed, "request {i} at the exact rate");
        }
        // Half an interval after the last allowed one: too early.
        let early = run(quota, &mut tat, T0 + 99 * 100_000 + 50_000);
        assert!(!early.allowed);
    }

    #[test]
    fn an_idle_bucket_refills_but_never_beyond_the_burst() {
        let quota = Quota::per_second(1, 3).unwrap();
        let mut tat = None;
        for _ in 0..3 {
            assert!(run(quota, &mut tat, T0).allowed);
        }
        assert!(!run(quota, &mut tat, T0).allowed);
        // An hour idle gives back the burst, not 3600 requests.
        let later = T0 + 3600 * SECOND_US;
        let allowed = (0..10)
            .filter(|_| run(quota, &mut tat, later).allowed)
            .count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn reset_and_retry_after_are_whole_seconds_rounded_up() {
        // One request a minute, burst 2: after two, the bucket is 120 s from full and the
        // next cell is 60 s away.
        let quota = Quota::per_minute(1, 2).unwrap();
        let mut tat = None;
        let first = run(quota, &mut tat, T0);
        assert_eq!((first.remaining, first.reset_s), (1, 60));
        let second = run(quota, &mut tat, T0);
        assert_eq!((second.remaining, second.reset_s), (0, 120));
        let denied = run(quota, &mut tat, T0 + 1);
        assert_eq!(denied.retry_after_s, Some(60));
        assert_eq!(denied.reset_s, 120);
        // 30 s later half a cell has dripped out: still 30 s to wait.
        let half = run(quota, &mut tat, T0 + 30 * SECOND_US);
        assert_eq!(half.retry_after_s, Some(30));
        assert!(run(quota, &mut tat, T0 + 60 * SECOND_US).allowed);
    }

    #[test]
    fn zero_means_unlimited_and_huge_rates_stay_positive() {
        assert_eq!(Quota::per_second(0, 10), None);
        assert_eq!(Quota::per_minute(0, 10), None);
        assert_eq!(Quota::per_second(1_000_000, 1).unwrap().interval_us, 1);
        assert_eq!(Quota::per_second(10, 0).unwrap().burst, 1);
    }
}
