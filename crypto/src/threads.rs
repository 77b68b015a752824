//! How many threads the crypto passes use: encryption, decryption shares and combination split
//! their vectors into independent bins or chunks, and aggregation hashes each ciphertext beside
//! its sum, on a rayon pool. Every pass is exact (wrapping sums) or draws each bin's randomness from its own seed, so
//! a result does not depend on the number of threads: the `crypto_threads` setting changes
//! speed only.

use core::num::NonZeroUsize;

use super::CryptoError;

/// Sets this process's crypto threads (`None`: one per core), before the first crypto pass;
/// returns the number in use. Refused once the pool exists (the first pass creates it with one
/// thread per core).
pub fn set_threads(threads: Option<NonZeroUsize>) -> Result<usize, CryptoError> {
    let threads = threads.unwrap_or_else(default_threads);
    builder(threads).build_global().map_err(|e| refused(threads, &e))?;
    Ok(threads.get())
}

/// The pool's settings: `threads` threads named for the crypto.
fn builder(threads: NonZeroUsize) -> rayon::ThreadPoolBuilder {
    rayon::ThreadPoolBuilder::new().num_threads(threads.get()).thread_name(|i| format!("fedcare-crypto-{i}"))
}

fn refused(threads: NonZeroUsize, error: &rayon::ThreadPoolBuildError) -> CryptoError {
    CryptoError::Threads { threads: threads.get(), message: error.to_string() }
}

/// A pool of crypto threads of its own (benchmarks, tests): work run in it leaves the process's
/// pool as it is.
#[derive(Debug)]
pub struct CryptoPool {
    pool: rayon::ThreadPool,
}

impl CryptoPool {
    /// A pool of `threads` threads.
    pub fn new(threads: NonZeroUsize) -> Result<Self, CryptoError> {
        Ok(Self { pool: builder(threads).build().map_err(|e| refused(threads, &e))? })
    }

    /// Its threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `work`, its crypto passes on this pool.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        self.pool.install(work)
    }
}

/// One thread per core the OS lets this process use (1 if it cannot tell).
pub fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}
