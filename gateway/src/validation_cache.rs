//! The gateway's memory of recent license validations, so that products
//! validating the same keys again and again are answered without a call to
//! license-svc.
//!
//! A disabled key must read `DISABLED` at once, so the cache is trusted only
//! while it hears of every change:
//!
//! * license-svc announces each key it changed once the change is committed
//!   ([`platform::invalidation`]); every gateway drops that key when the
//!   message arrives. While the subscription is down the cache is bypassed
//!   (neither read nor filled), and when it is live again the cache is
//!   emptied before being trusted, since announcements made in between are
//!   lost.
//! * The route that made an admin change drops the key itself as soon as
//!   license-svc answers, so the replica that made a change never answers
//!   from before it, even before the announcement arrives.
//! * An answer fetched before a change but arriving after its announcement
//!   must not be stored: each shard counts the drops made in it (its
//!   generation), and an answer is stored only if its shard dropped nothing
//!   since the lookup that missed.
//!
//! Entries are forgotten after a short maximum age as well, which bounds
//! how long a lost announcement (license-svc could not reach Redis) can
//! leave an answer stale. The cache stores what license-svc said, and the
//! route recomputes the status from the stored expiry at every read, so a
//! cached key turns `EXPIRED` the moment its expiry passes.
//!
//! So that a key validated all the time does not miss every time its entry
//! ages out (a miss waits for license-svc, and misses of many hot keys at
//! once are what the slowest answers are made of), the first hit on an
//! entry past half its maximum age hands out a ticket to refresh it in the
//! background, under the same rule as any store.
//!
//! Memory is bounded: each shard holds at most its share of the capacity,
//! and a full shard drops an arbitrary entry to make room (random eviction,
//! which costs nothing on the hot path).

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// Shards, each behind its own lock, so concurrent requests rarely wait on
/// one another.
const SHARDS: usize = 16;

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup<V> {
    /// A stored answer, younger than the maximum age; with a ticket when it
    /// is old enough to be refreshed (handed out once per entry).
    Hit { value: V, refresh: Option<Ticket> },
    /// Nothing usable: ask license-svc, then [`Cache::store`] the answer
    /// with this ticket.
    Miss(Ticket),
    /// The cache cannot be trusted now (its subscription is down): ask
    /// license-svc and store nothing.
    Bypass,
}

/// Permission to store the answer to one missed lookup, valid as long as
/// nothing was dropped from its shard since.
#[derive(Debug)]
pub struct Ticket {
    key: String,
    shard: usize,
    generation: u64,
}

#[derive(Debug)]
struct Entry<V> {
    stored_at: Instant,
    value: V,
    /// A refresh ticket was handed out for it.
    refreshing: bool,
}

#[derive(Debug)]
struct Shard<V> {
    /// Counts the drops (and flushes) made in this shard.
    generation: u64,
    entries: HashMap<String, Entry<V>>,
}

#[derive(Debug)]
struct Inner<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    capacity_per_shard: usize,
    max_age: Duration,
    /// Age from which a hit offers a refresh.
    refresh_after: Duration,
    hasher: RandomState,
    /// Whether every change is being heard of (the subscription is live and
    /// the cache was emptied when it became so).
    trusted: AtomicBool,
}

/// A bounded map from license key to answer, shared by every request of
/// this process. Cheap to clone.
#[derive(Debug)]
pub struct Cache<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for Cache<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V: Clone> Cache<V> {
    /// A cache of at most about `capacity` entries, each kept at most
    /// `max_age` and refreshed from half of it. It bypasses itself until
    /// [`Cache::trust`] is called.
    pub fn new(capacity: usize, max_age: Duration) -> Self {
        Self::with_refresh_after(capacity, max_age, max_age / 2)
    }

    fn with_refresh_after(capacity: usize, max_age: Duration, refresh_after: Duration) -> Self {
        let capacity_per_shard = capacity.div_ceil(SHARDS).max(1);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    generation: 0,
                    entries: HashMap::new(),
                })
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                shards,
                capacity_per_shard,
                max_age,
                refresh_after,
                hasher: RandomState::new(),
                trusted: AtomicBool::new(false),
            }),
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        (self.inner.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, Shard<V>> {
        // A panic while holding the lock leaves a map that is still a map.
        self.inner.shards[shard].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored answer for `key`, if the cache is trusted and it is young
    /// enough.
    pub fn lookup(&self, key: &str) -> Lookup<V> {
        if !self.inner.trusted.load(Ordering::SeqCst) {
            return Lookup::Bypass;
        }
        let shard_index = self.shard_of(key);
        let mut shard = self.lock(shard_index);
        let generation = shard.generation;
        match shard.entries.get_mut(key) {
            Some(entry) if entry.stored_at.elapsed() < self.inner.max_age => {
                let refresh = (!entry.refreshing && entry.stored_at.elapsed() >= self.inner.refresh_after).then(|| {
                    entry.refreshing = true;
                    Ticket {
                        key: key.to_owned(),
                        shard: shard_index,
                        generation,
                    }
                });
                return Lookup::Hit {
                    value: entry.value.clone(),
                    refresh,
                };
            }
            Some(_) => {
                shard.entries.remove(key);
            }
            None => {}
        }
        Lookup::Miss(Ticket {
            key: key.to_owned(),
            shard: shard_index,
            generation: shard.generation,
        })
    }

    /// Stores the answer to a missed lookup, unless something was dropped
    /// from its shard since (the answer may predate that change). Returns
    /// whether it was stored.
    pub fn store(&self, ticket: Ticket, value: V) -> bool {
        let mut shard = self.lock(ticket.shard);
        if shard.generation != ticket.generation {
            return false;
        }
        if shard.entries.len() >= self.inner.capacity_per_shard && !shard.entries.contains_key(&ticket.key) {
            let victim = shard.entries.keys().next().cloned();
            if let Some(victim) = victim {
                shard.entries.remove(&victim);
            }
        }
        shard.entries.insert(
            ticket.key,
            Entry {
                stored_at: Instant::now(),
                value,
                refreshing: false,
            },
        );
        true
    }

    /// Drops `key`: it changed, or may have.
    pub fn forget(&self, key: &str) {
        let mut shard = self.lock(self.shard_of(key));
        shard.generation += 1;
        shard.entries.remove(key);
    }

    /// Drops everything.
    pub fn flush(&self) {
        for index in 0..SHARDS {
            let mut shard = self.lock(index);
            shard.generation += 1;
            shard.entries.clear();
        }
    }

    /// Empties the cache, then uses it: every change from now on is heard of.
    pub fn trust(&self) {
        self.flush();
        self.inner.trusted.store(true, Ordering::SeqCst);
    }

    /// Stops using the cache: changes may go unheard until [`Cache::trust`].
    pub fn distrust(&self) {
        self.inner.trusted.store(false, Ordering::SeqCst);
        self.flush();
    }

    /// Entries held now, expired ones included.
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|index| self.lock(index).entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The cache follows the announcements of changed keys.
impl<V: Clone + Send + 'static> platform::invalidation::Listener for Cache<V> {
    fn subscribed(&self) {
        self.trust();
    }

    fn unsubscribed(&self) {
        self.distrust();
    }

    fn changed(&self, key: &str) {
        self.forget(key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Cache, Lookup};

    const KEY: &str = "SK-AAAA-BBBB-CCCC-DDDD";

    fn trusted(capacity: usize) -> Cache<u32> {
        let cache = Cache::new(capacity, Duration::from_secs(60));
        cache.trust();
        cache
    }

    fn refreshing_at_once() -> Cache<u32> {
        let cache = Cache::with_refresh_after(100, Duration::from_secs(60), Duration::ZERO);
        cache.trust();
        cache
    }

    fn miss(cache: &Cache<u32>, key: &str) -> super::Ticket {
        match cache.lookup(key) {
            Lookup::Miss(ticket) => ticket,
            other => panic!("expected a miss, got {other:?}"),
        }
    }

    #[test]
    fn a_stored_answer_is_found_until_it_is_forgotten() {
        let cache = trusted(100);
        let ticket = miss(&cache, KEY);
        assert!(cache.store(ticket, 7));
        assert!(matches!(
            cache.lookup(KEY),
            Lookup::Hit {
                value: 7,
                refresh: None
            }
        ));
        cache.forget(KEY);
        miss(&cache, KEY);
    }

    #[test]
    fn an_answer_fetched_before_a_change_is_not_stored_after_it() {
        let cache = trusted(100);
        let ticket = miss(&cache, KEY);
        // The key changes (and is announced) while its old state is in flight.
        cache.forget(KEY);
        assert!(!cache.store(ticket, 7));
        miss(&cache, KEY);
    }

    #[test]
    fn nothing_is_used_or_kept_while_untrusted_and_trusting_again_starts_empty() {
        let cache = Cache::new(100, Duration::from_secs(60));
        assert!(
            matches!(cache.lookup(KEY), Lookup::Bypass),
            "untrusted until subscribed"
        );
        cache.trust();
        let ticket = miss(&cache, KEY);
        assert!(cache.store(ticket, 7));
        let in_flight = miss(&cache, "SK-AAAA-BBBB-CCCC-EEEE");

        cache.distrust();
        assert!(matches!(cache.lookup(KEY), Lookup::Bypass));
        assert!(
            !cache.store(in_flight, 8),
            "an answer from before the outage is not kept"
        );
        cache.trust();
        assert!(cache.is_empty());
        miss(&cache, KEY);
    }

    #[test]
    fn an_entry_past_its_refresh_age_is_refreshed_once_and_used_meanwhile() {
        let cache = refreshing_at_once();
        let ticket = miss(&cache, KEY);
        assert!(cache.store(ticket, 7));
        let Lookup::Hit {
            value: 7,
            refresh: Some(ticket),
        } = cache.lookup(KEY)
        else {
            panic!("no refresh offered");
        };
        assert!(
            matches!(
                cache.lookup(KEY),
                Lookup::Hit {
                    value: 7,
                    refresh: None
                }
            ),
            "one refresh at a time"
        );
        assert!(cache.store(ticket, 8));
        assert!(matches!(
            cache.lookup(KEY),
            Lookup::Hit {
                value: 8,
                refresh: Some(_)
            }
        ));
    }

    #[test]
    fn a_refresh_that_raced_a_change_is_not_stored() {
        let cache = refreshing_at_once();
        let ticket = miss(&cache, KEY);
        assert!(cache.store(ticket, 7));
        let Lookup::Hit {
            refresh: Some(ticket), ..
        } = cache.lookup(KEY)
        else {
            panic!("no refresh offered");
        };
        cache.forget(KEY);
        assert!(!cache.store(ticket, 8));
        miss(&cache, KEY);
    }

    #[test]
    fn entries_older_than_the_maximum_age_are_not_used() {
        let cache = Cache::new(100, Duration::ZERO);
        cache.trust();
        let ticket = miss(&cache, KEY);
        assert!(cache.store(ticket, 7));
        miss(&cache, KEY);
    }

    #[test]
    fn the_cache_never_holds_much_more_than_its_capacity() {
        let cache = trusted(64);
        for n in 0..10_000 {
            let key = format!("SK-AAAA-BBBB-CCCC-{n:04}");
            let ticket = miss(&cache, &key);
            cache.store(ticket, n);
        }
        assert!(cache.len() <= 64, "{} entries", cache.len());
    }
}
