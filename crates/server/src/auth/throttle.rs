//! Failed sign-in throttling: after a few failures for one username or from one address, further attempts
//! are refused for a while, doubling with each further failure. Kept in memory: it protects one instance,
//! and a restart only gives an attacker a handful of extra guesses.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FREE_FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const BASE_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct LoginThrottle {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

impl LoginThrottle {
    /// `Err(seconds)` when any of the keys is locked.
    pub fn check(&self, keys: &[String]) -> Result<(), u64> {
        let now = Instant::now();
        let entries = self.entries.lock().expect("throttle lock");
        let wait = keys
            .iter()
            .filter_map(|k| entries.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| (until - now).as_secs().max(1))
            .max();
        match wait {
            Some(secs) => Err(secs),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, keys: &[String]) {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("throttle lock");
        if entries.len() > 100_000 {
            // Bound memory under a spray of random usernames: forget old, unlocked entries.
            entries.retain(|_, e| now.duration_since(e.last_failure) < WINDOW);
        }
        for key in keys {
            let entry = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                last_failure: now,
                locked_until: None,
            });
            if now.duration_since(entry.last_failure) > WINDOW {
                entry.failures = 0;
            }
            entry.failures += 1;
            entry.last_failure = now;
            if entry.failures >= FREE_FAILURES {
                let doublings = (entry.failures - FREE_FAILURES).min(10);
                let lock = (BASE_LOCK * 2u32.pow(doublings)).min(MAX_LOCK);
                entry.locked_until = Some(now + lock);
            }
        }
    }

    pub fn record_success(&self, key: &str) {
        self.entries.lock().expect("throttle lock").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_free_failures_and_only_that_key() {
        let t = LoginThrottle::default();
        let keys = vec!["user:alice".to_string(), "ip:10.0.0.1".to_string()];
        for _ in 0..FREE_FAILURES - 1 {
            t.record_failure(&keys);
            assert!(t.check(&keys).is_ok());
        }
        t.record_failure(&keys);
        let wait = t.check(&keys).unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(t.check(&["user:bob".to_string()]).is_ok());
        t.record_success("user:alice");
        // The address stays locked even when the username is cleared.
        assert!(t.check(&keys).is_err());
        assert!(t.check(&["user:alice".to_string()]).is_ok());
    }
}
