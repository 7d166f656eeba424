//! Fetching the full MNIST from a public mirror, verified by SHA-256 before anything is kept.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::files::write_atomically;

/// The mirror TensorFlow's datasets use, serving LeCun's original files.
pub const MNIST_MIRROR: &str = "https://storage.googleapis.com/cvdf-datasets/mnist/";

/// The four standard files and the SHA-256 of each (as published with the mirror).
pub const MNIST_FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
];

/// No file of ours is larger than this; a response that is must be something else.
const MAX_BYTES: u64 = 64 << 20;

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads the full MNIST into `dir` (see [`download_files`]).
pub fn download_mnist(dir: &Path) -> Result<()> {
    download_files(MNIST_MIRROR, &MNIST_FILES, dir, &mut |_, _| {})
}

/// How long a download waits before giving up on a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To connect (name lookup, TCP and TLS included).
    pub connect: std::time::Duration,
    /// For each read: a server that stops sending for this long is given up on.
    pub read: std::time::Duration,
}

impl Default for Timeouts {
    /// 15 s to connect, 30 s of silence in a read.
    fn default() -> Self {
        Timeouts {
            connect: std::time::Duration::from_secs(15),
            read: std::time::Duration::from_secs(30),
        }
    }
}

/// Downloads each `(name, sha256)` from `base_url + name` into `dir`. A file already there
/// with the right hash is kept; a download whose hash differs, or that fails, is rejected
/// and nothing is written for it. `progress(name, bytes)` is told about each file fetched.
/// Waits at most the default [`Timeouts`] on a silent server.
pub fn download_files(
    base_url: &str,
    files: &[(&str, &str)],
    dir: &Path,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<()> {
    download_files_with(base_url, files, dir, progress, Timeouts::default())
}

/// [`download_files`] with the given [`Timeouts`].
pub fn download_files_with(
    base_url: &str,
    files: &[(&str, &str)],
    dir: &Path,
    progress: &mut dyn FnMut(&str, usize),
    timeouts: Timeouts,
) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(timeouts.connect))
        .timeout_per_read(Some(timeouts.read))
        .build()
        .into();
    std::fs::create_dir_all(dir).map_err(crate::files::io("create the folder", dir))?;
    for &(name, expected) in files {
        let path = dir.join(name);
        if let Ok(existing) = crate::files::read_regular(&path, "read")
            && sha256_hex(&existing) == expected
        {
            continue;
        }
        let url = format!("{}/{name}", base_url.trim_end_matches('/'));
        let failed = |problem: String| Error::Download {
            file: url.clone(),
            problem,
        };
        let explain = |e: ureq::Error| match e {
            ureq::Error::Timeout(ureq::Timeout::Connect) => format!(
                "could not connect to {} within {} s",
                host_of(&url),
                timeouts.connect.as_secs_f64()
            ),
            ureq::Error::Timeout(ureq::Timeout::PerRead) => {
                format!("{} sent nothing for {} s", host_of(&url), timeouts.read.as_secs_f64())
            }
            other => other.to_string(),
        };
        let mut response = agent.get(&url).call().map_err(|e| failed(explain(e)))?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BYTES)
            .read_to_vec()
            .map_err(|e| failed(explain(e)))?;
        let got = sha256_hex(&bytes);
        if got != expected {
            return Err(failed(format!(
                "SHA-256 {got} does not match the expected {expected} ({} bytes received); nothing was kept",
                bytes.len()
            )));
        }
        write_atomically(&path, &bytes)?;
        progress(name, bytes.len());
    }
    Ok(())
}

/// `host:port` of a URL, for messages.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}
