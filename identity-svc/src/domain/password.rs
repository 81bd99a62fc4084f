//! Passwords: the policy a new password must meet, and argon2id hashing.
//!
//! The policy follows NIST SP 800-63B: a minimum length and nothing else to
//! memorise (no composition rules), a maximum that stops hash-flooding, and
//! a refusal of passwords that merely repeat the email. Hashing uses argon2id
//! with OWASP's parameters (m = 19 MiB, t = 2, p = 1); it is CPU-bound, so it
//! runs on dedicated threads, one hash per core at a time, which keeps memory
//! bounded and leaves the async workers free. The queue in front of them is
//! bounded too: when it is full a caller is told to come back
//! ([`HashingError::Busy`]) rather than queued behind a flood, and a job
//! whose caller has gone is dropped unhashed.

use std::sync::{Arc, Mutex, mpsc};

use argon2::{Algorithm, Argon2, Block, Params, Version, password_hash::phc::PasswordHash};
use base64::Engine as _;
use tokio::sync::oneshot;

use super::Email;

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 128;

/// Whether `raw` is longer than any password could be: such a login
/// attempt is refused before hashing (it cannot match, and hashing a long
/// input is work an attacker chooses).
pub fn exceeds_max_length(raw: &str) -> bool {
    // A char is at most 4 bytes: no need to count the chars of a huge input.
    raw.len() > MAX_LENGTH * 4 || raw.chars().count() > MAX_LENGTH
}

/// A password that meets the policy. Never printed.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

impl Password {
    pub fn parse(raw: String, email: &Email) -> Result<Self, String> {
        let length = raw.chars().count();
        if length < MIN_LENGTH {
            return Err(format!("password must be at least {MIN_LENGTH} characters long"));
        }
        if exceeds_max_length(&raw) {
            return Err(format!("password must be at most {MAX_LENGTH} characters long"));
        }
        let first = raw.chars().next().unwrap_or_default();
        if raw.trim().is_empty() || raw.chars().all(|c| c == first) {
            return Err("password must not be one repeated character".into());
        }
        let lowered = raw.to_lowercase();
        let local = email.as_str().split('@').next().unwrap_or_default();
        if lowered == email.as_str() || (local.len() >= 4 && lowered.contains(local)) {
            return Err("password must not contain your email address".into());
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Hashes and verifies passwords with argon2id on a few dedicated threads.
///
/// Dedicated threads rather than tokio's blocking pool: the pool may run
/// each hash on a different thread, and the allocator keeps a 19 MiB arena
/// alive per thread that ever hashed, so memory would grow with the pool.
/// Here it stays at about `threads × 19 MiB`.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    jobs: mpsc::SyncSender<Job>,
    /// A hash of a random password, verified against when the email is
    /// unknown so that "no such account" costs the same time as "wrong
    /// password".
    decoy: Arc<str>,
}

type Job = Box<dyn FnOnce() + Send>;

/// Why a hash or a verification was not done.
#[derive(Debug, thiserror::Error)]
pub enum HashingError {
    /// Every thread is busy and the queue is full: come back shortly.
    #[error("password hashing is busy")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// OWASP's argon2id parameters: 19 MiB of memory, 2 passes, 1 lane.
const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
/// How the parameters read in a PHC string.
const PHC_PARAMS: &str = "m=19456,t=2,p=1";

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST, T_COST, P_COST, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

thread_local! {
    /// Each hashing thread's argon2 memory, allocated once and reused, so a
    /// hash costs no 19 MiB allocation and memory stays at threads × 19 MiB.
    static MEMORY: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// argon2id of `password` with `salt` into `out`, in this thread's memory.
fn hash_into(password: &[u8], salt: &[u8], out: &mut [u8]) -> anyhow::Result<()> {
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() != M_COST as usize {
            *memory = vec![Block::default(); M_COST as usize];
        }
        argon2()
            .hash_password_into_with_memory(password, salt, out, memory.as_mut_slice())
            .map_err(|err| anyhow::anyhow!("argon2 hashing failed: {err}"))
    })
}

/// A fresh PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
fn phc_hash(password: &str) -> anyhow::Result<String> {
    let salt: [u8; 16] = rand::random();
    let mut out = [0u8; 32];
    hash_into(password.as_bytes(), &salt, &mut out)?;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    Ok(format!(
        "$argon2id$v=19${PHC_PARAMS}${}${}",
        b64.encode(salt),
        b64.encode(out)
    ))
}

/// Whether `password` matches the PHC string `stored`. Strings with today's
/// parameters are checked in this thread's memory; any other (older
/// parameters, another variant) by argon2's own verifier.
fn phc_verify(password: &str, stored: &str) -> anyhow::Result<bool> {
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let fields: Vec<&str> = stored.split('$').collect();
    if let ["", "argon2id", "v=19", PHC_PARAMS, salt, hash] = fields.as_slice()
        && let (Ok(salt), Ok(expected)) = (b64.decode(salt), b64.decode(hash))
    {
        let mut out = vec![0u8; expected.len()];
        hash_into(password.as_bytes(), &salt, &mut out)?;
        // Compare every byte, so timing says nothing about where they differ.
        return Ok(out.iter().zip(&expected).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0);
    }
    use argon2::PasswordVerifier as _;
    let parsed = PasswordHash::new(stored).map_err(|err| anyhow::anyhow!("stored hash is malformed: {err}"))?;
    Ok(argon2().verify_password(password.as_bytes(), &parsed).is_ok())
}

impl PasswordHasher {
    /// A hasher running at most `threads` hashes at once, with at most
    /// `queue` more waiting. The threads stop when the last clone of the
    /// hasher is dropped.
    pub async fn new(threads: usize, queue: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(queue);
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    loop {
                        // Holding the lock while waiting is the point: one
                        // idle thread takes the next job, the others queue.
                        let next = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = next else { return };
                        platform::metrics::metrics().password_hash_queue.dec();
                        // A panicking job drops its reply; the caller sees an error.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })?;
        }
        let mut hasher = Self {
            jobs,
            decoy: Arc::from(""),
        };
        let random: [u8; 16] = rand::random();
        let decoy = hasher.hash_raw(hex(&random)).await?;
        hasher.decoy = Arc::from(decoy);
        Ok(hasher)
    }

    /// The PHC string of `password` (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: &Password) -> Result<String, HashingError> {
        self.hash_raw(password.expose().to_owned()).await
    }

    async fn hash_raw(&self, password: String) -> Result<String, HashingError> {
        self.run(move || phc_hash(&password)).await
    }

    /// Whether `candidate` matches `stored`; with `stored = None` the decoy
    /// hash is checked instead and the answer is always `false`.
    pub async fn verify(&self, candidate: &str, stored: Option<&str>) -> Result<bool, HashingError> {
        let known = stored.is_some();
        let stored = stored.map_or_else(|| self.decoy.to_string(), str::to_owned);
        let candidate = candidate.to_owned();
        let matches = self.run(move || phc_verify(&candidate, &stored)).await?;
        Ok(known && matches)
    }

    /// Runs `work` on a hashing thread, inside the caller's span — unless
    /// the queue is full, or the caller has gone by the time a thread is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashingError> {
        let (reply, answer) = oneshot::channel();
        let span = tracing::info_span!("argon2id");
        let job: Job = Box::new(move || {
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(span.in_scope(work));
        });
        // Counted before it can be taken, so the gauge never reads below 0.
        let waiting = &platform::metrics::metrics().password_hash_queue;
        waiting.inc();
        self.jobs.try_send(job).map_err(|err| {
            waiting.dec();
            match err {
                mpsc::TrySendError::Full(_) => HashingError::Busy,
                mpsc::TrySendError::Disconnected(_) => {
                    anyhow::anyhow!("the password hashing threads have stopped").into()
                }
            }
        })?;
        let result = answer
            .await
            .map_err(|_| anyhow::anyhow!("a password hashing job panicked"))?;
        Ok(result?)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email::parse("grace.hopper@example.com").unwrap()
    }

    #[test]
    fn the_policy_refuses_short_long_repeated_and_email_passwords() {
        assert!(Password::parse("short".into(), &email()).is_err());
        assert!(Password::parse("x".repeat(129), &email()).is_err());
        assert!(Password::parse("aaaaaaaaaaaa".into(), &email()).is_err());
        assert!(Password::parse("grace.hopper@example.com".into(), &email()).is_err());
        assert!(Password::parse("my-grace.hopper-pw".into(), &email()).is_err());
        assert!(Password::parse("correct horse battery".into(), &email()).is_ok());
    }

    #[test]
    fn a_password_never_prints() {
        let password = Password::parse("correct horse battery".into(), &email()).unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        // Ours verify with argon2's own verifier…
        let ours = phc_hash("correct horse battery").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2().verify_password(b"correct horse battery", &parsed).is_ok());
        assert!(argon2().verify_password(b"wrong horse battery", &parsed).is_err());
        // …and argon2's own verify with ours, through the reused memory.
        let theirs = argon2().hash_password(b"correct horse battery").unwrap().to_string();
        assert!(phc_verify("correct horse battery", &theirs).unwrap());
        assert!(!phc_verify("wrong horse battery", &theirs).unwrap());
    }

    #[test]
    fn hashes_with_other_parameters_still_verify() {
        use argon2::PasswordHasher as _;
        let params = Params::new(8 * 1024, 1, 1, None).unwrap();
        let older = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        assert!(older.contains("m=8192,t=1,p=1"));
        assert!(phc_verify("correct horse battery", &older).unwrap());
        assert!(!phc_verify("wrong horse battery", &older).unwrap());
    }

    /// Occupies one hashing thread until the returned sender is used.
    async fn hold(hasher: &PasswordHasher) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = oneshot::channel();
        let hasher = hasher.clone();
        tokio::spawn(async move {
            hasher
                .run(move || {
                    let _ = started.send(());
                    let _ = held.recv();
                    Ok(())
                })
                .await
        });
        running.await.unwrap();
        release
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy() {
        let hasher = PasswordHasher::new(1, 2).await.unwrap();
        let release = hold(&hasher).await;
        while hasher.jobs.try_send(Box::new(|| {})).is_ok() {}
        assert!(matches!(
            hasher.verify("correct horse battery", None).await,
            Err(HashingError::Busy)
        ));
        release.send(()).unwrap();
        // Room again once the worker has run the queued filler jobs.
        let answer = loop {
            match hasher.verify("correct horse battery", None).await {
                Err(HashingError::Busy) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                answer => break answer,
            }
        };
        assert!(!answer.unwrap());
    }

    #[tokio::test]
    async fn the_queue_gauge_counts_the_jobs_waiting_for_a_thread() {
        let waiting = || platform::metrics::metrics().password_hash_queue.get();
        let hasher = PasswordHasher::new(1, 4).await.unwrap();
        let release = hold(&hasher).await;
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.verify("correct horse battery", None).await })
            })
            .collect();
        while waiting() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(waiting(), 2);
        release.send(()).unwrap();
        for job in queued {
            assert!(!job.await.unwrap().unwrap());
        }
        assert_eq!(waiting(), 0);
    }

    #[tokio::test]
    async fn a_job_whose_caller_has_gone_is_not_run() {
        let hasher = PasswordHasher::new(1, 4).await.unwrap();
        let release = hold(&hasher).await;
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let abandoned = hasher.run(move || {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        });
        let waited = tokio::time::timeout(std::time::Duration::from_millis(50), abandoned).await;
        assert!(waited.is_err(), "queued behind the held thread, then given up");
        release.send(()).unwrap();
        // Answered only once the thread has passed the abandoned job.
        assert!(!hasher.verify("correct horse battery", None).await.unwrap());
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = PasswordHasher::new(2, 8).await.unwrap();
        let password = Password::parse("correct horse battery".into(), &email()).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify("correct horse battery", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("correct horse battery!", Some(&hash)).await.unwrap());
        assert!(!hasher.verify("correct horse battery", None).await.unwrap());
    }
}
