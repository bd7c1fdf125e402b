//! One-time tokens: the secret part of a streaming URL.
//!
//! A [`TokenCache`] issues a token for a value (the validated CRI request),
//! and gives the value back exactly once, to whoever presents the token
//! within [`TOKEN_TTL`]. Tokens are [`TOKEN_BYTES`] bytes from
//! `/dev/urandom` (the standard library has no random source, and the
//! project takes no crate for one), written as unpadded URL-safe base64 so
//! they sit in a URL path as they are. At most [`MAX_PENDING_TOKENS`] wait
//! to be redeemed; expired ones are dropped whenever a token is issued.
//!
//! This module does not know what the values are, and it never logs or
//! formats a token: a token is as good as the request it stands for.

use std::collections::hash_map::{Entry, HashMap};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::TokenError;
use crate::codec::base64::{self, Alphabet};

/// How long an issued token stays redeemable: the kubelet connects right
/// after the RPC returns.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);

/// Most tokens waiting to be redeemed at once; a burst of RPCs beyond it is
/// refused rather than allowed to grow the map without bound.
pub const MAX_PENDING_TOKENS: usize = 1000;

/// Random bytes per token: 128 bits, beyond guessing within [`TOKEN_TTL`].
pub const TOKEN_BYTES: usize = 16;

/// The kernel's non-blocking random source.
const RANDOM_SOURCE: &str = "/dev/urandom";

/// Where the cache reads the time from; tests substitute a clock they move.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

struct Pending<T> {
    value: T,
    expires: Instant,
}

/// Tokens waiting to be redeemed, each standing for a `T`.
pub struct TokenCache<T> {
    pending: Mutex<HashMap<String, Pending<T>>>,
    random: File,
    clock: Clock,
}

impl<T> fmt::Debug for TokenCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("pending", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl<T> TokenCache<T> {
    /// An empty cache on the system clock. Opens the random source now, so
    /// that a node without one fails at start-up, not at the first Exec.
    pub fn new() -> Result<TokenCache<T>, TokenError> {
        TokenCache::with_clock(Arc::new(Instant::now))
    }

    /// An empty cache that reads the time from `clock`.
    pub fn with_clock(clock: Clock) -> Result<TokenCache<T>, TokenError> {
        Ok(TokenCache {
            pending: Mutex::new(HashMap::new()),
            random: File::open(RANDOM_SOURCE)
                .map_err(|err| TokenError::Random(RANDOM_SOURCE, err))?,
            clock,
        })
    }

    /// Issues a fresh token standing for `value` until [`TOKEN_TTL`] has
    /// passed or it is redeemed.
    pub fn insert(&self, value: T) -> Result<String, TokenError> {
        let token = self.random_token()?;
        let now = (self.clock)();
        let mut pending = self.lock();
        pending.retain(|_, entry| entry.expires > now);
        if pending.len() >= MAX_PENDING_TOKENS {
            return Err(TokenError::Exhausted {
                limit: MAX_PENDING_TOKENS,
            });
        }
        match pending.entry(token) {
            Entry::Occupied(_) => Err(TokenError::Repeated(RANDOM_SOURCE)),
            Entry::Vacant(slot) => {
                let token = slot.key().clone();
                slot.insert(Pending {
                    value,
                    expires: now + TOKEN_TTL,
                });
                Ok(token)
            }
        }
    }

    /// The value `token` stands for, if it was issued, has not expired and
    /// was not redeemed before. Presenting a token uses it up, whatever the
    /// caller then does with the value.
    pub fn redeem(&self, token: &str) -> Option<T> {
        let now = (self.clock)();
        let entry = self.lock().remove(token)?;
        (entry.expires > now).then_some(entry.value)
    }

    /// Tokens issued and not yet redeemed, expired ones included until the
    /// next insert drops them.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn random_token(&self) -> Result<String, TokenError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        // `Read for &File`: concurrent reads of the random source need no lock.
        (&self.random)
            .read_exact(&mut bytes)
            .map_err(|err| TokenError::Random(RANDOM_SOURCE, err))?;
        let mut token = base64::encode(&bytes, Alphabet::UrlSafe);
        // Padding carries no bits and `=` would need escaping in a query.
        token.truncate(token.trim_end_matches('=').len());
        Ok(token)
    }

    /// The map stays consistent if a holder panicked: every change to it
    /// is a single insert, remove or retain.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Pending<T>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// A clock that stands still until the test moves it.
    #[derive(Clone)]
    struct FakeClock(Arc<Mutex<Instant>>);

    impl FakeClock {
        fn new() -> FakeClock {
            FakeClock(Arc::new(Mutex::new(Instant::now())))
        }

        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }

        fn clock(&self) -> Clock {
            let now = Arc::clone(&self.0);
            Arc::new(move || *now.lock().unwrap())
        }
    }

    fn cache(clock: &FakeClock) -> TokenCache<u32> {
        TokenCache::with_clock(clock.clock()).unwrap()
    }

    #[test]
    fn a_token_is_128_bits_of_unpadded_url_safe_base64() {
        let tokens = cache(&FakeClock::new());
        let token = tokens.insert(1).unwrap();
        assert_eq!(token.len(), 22, "{} symbols", token.len());
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let decoded = base64::decode(&token, Alphabet::UrlSafe).unwrap();
        assert_eq!(decoded.len(), TOKEN_BYTES);
    }

    #[test]
    fn tokens_differ() {
        let tokens = cache(&FakeClock::new());
        let issued: HashSet<String> = (0..500).map(|n| tokens.insert(n).unwrap()).collect();
        assert_eq!(issued.len(), 500);
    }

    #[test]
    fn a_token_is_redeemed_once() {
        let tokens = cache(&FakeClock::new());
        let token = tokens.insert(7).unwrap();
        assert_eq!(tokens.redeem(&token), Some(7));
        assert_eq!(tokens.redeem(&token), None);
        assert!(tokens.is_empty());
    }

    #[test]
    fn an_unknown_token_redeems_nothing() {
        let tokens = cache(&FakeClock::new());
        tokens.insert(7).unwrap();
        assert_eq!(tokens.redeem("AAAAAAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(tokens.redeem(""), None);
        assert_eq!(tokens.len(), 1);
    }

    #[test]
    fn a_token_expires_after_its_ttl() {
        let clock = FakeClock::new();
        let tokens = cache(&clock);
        let fresh = tokens.insert(1).unwrap();
        let stale = tokens.insert(2).unwrap();
        clock.advance(TOKEN_TTL - Duration::from_millis(1));
        assert_eq!(tokens.redeem(&fresh), Some(1));
        clock.advance(Duration::from_millis(1));
        assert_eq!(tokens.redeem(&stale), None);
    }

    #[test]
    fn nothing_is_issued_beyond_the_limit() {
        let tokens = cache(&FakeClock::new());
        for n in 0..MAX_PENDING_TOKENS {
            tokens.insert(u32::try_from(n).unwrap()).unwrap();
        }
        let err = tokens.insert(0).unwrap_err();
        assert!(matches!(err, TokenError::Exhausted { limit } if limit == MAX_PENDING_TOKENS));
    }

    #[test]
    fn redeeming_makes_room() {
        let tokens = cache(&FakeClock::new());
        let first = tokens.insert(0).unwrap();
        for n in 1..MAX_PENDING_TOKENS {
            tokens.insert(u32::try_from(n).unwrap()).unwrap();
        }
        tokens.redeem(&first).unwrap();
        tokens.insert(0).unwrap();
    }

    #[test]
    fn expired_tokens_are_pruned_when_one_is_issued() {
        let clock = FakeClock::new();
        let tokens = cache(&clock);
        for n in 0..MAX_PENDING_TOKENS {
            tokens.insert(u32::try_from(n).unwrap()).unwrap();
        }
        clock.advance(TOKEN_TTL);
        let token = tokens.insert(9).unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens.redeem(&token), Some(9));
    }

    #[test]
    fn errors_never_show_a_token() {
        let message = TokenError::Exhausted { limit: 3 }.to_string();
        assert!(message.contains('3'), "{message}");
        let tokens = cache(&FakeClock::new());
        let token = tokens.insert(1).unwrap();
        assert!(!format!("{tokens:?}").contains(&token));
    }
}
