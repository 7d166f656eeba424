//! The downloader against a local loopback HTTP server serving small generated files.
#![cfg(feature = "download")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shadergrad::Error;
use shadergrad::data::download::{MNIST_FILES, download_files, sha256_hex};

/// Serves `files` (name → bytes) on 127.0.0.1 until the test ends; counts requests.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

fn serve(files: Vec<(&'static str, Vec<u8>)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/mnist/", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let files = Arc::new(Mutex::new(files));
    std::thread::spawn(move || {
        // Bounded: a test makes a handful of requests.
        for stream in listener.incoming().take(32) {
            let Ok(mut stream) = stream else { continue };
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            reader.read_line(&mut request).ok();
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let name = path.rsplit('/').next().unwrap_or("");
            let body = files
                .lock()
                .unwrap()
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b.clone());
            let response = match body {
                Some(b) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    )
                    .into_bytes();
                    r.extend(b);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
            };
            stream.write_all(&response).ok();
        }
    });
    Server { base, requests }
}

/// A folder path for `name`, not created: the code under test makes it.
fn temp(name: &str) -> common::TempDir {
    common::TempDir::unmade(&format!("dl-{name}"))
}

#[test]
fn good_files_are_downloaded_verified_and_not_fetched_twice() {
    let (a, b) = (b"first file".to_vec(), vec![7u8; 10_000]);
    let (ha, hb) = (sha256_hex(&a), sha256_hex(&b));
    let server = serve(vec![("a.gz", a.clone()), ("b.gz", b.clone())]);
    let dir = temp("good");
    let files = [("a.gz", ha.as_str()), ("b.gz", hb.as_str())];
    let mut fetched = Vec::new();
    download_files(&server.base, &files, &dir, &mut |name, bytes| {
        fetched.push((name.to_string(), bytes))
    })
    .unwrap();
    assert_eq!(fetched, vec![("a.gz".to_string(), 10), ("b.gz".to_string(), 10_000)]);
    assert_eq!(std::fs::read(dir.join("a.gz")).unwrap(), a);
    assert_eq!(std::fs::read(dir.join("b.gz")).unwrap(), b);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    // Already there with the right hash: nothing is fetched again.
    download_files(&server.base, &files, &dir, &mut |_, _| panic!("fetched again")).unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
}

#[test]
fn corrupted_or_missing_downloads_are_rejected_and_not_left_in_place() {
    let good = b"the real bytes".to_vec();
    let server = serve(vec![("c.gz", b"tampered bytes".to_vec())]);
    let dir = temp("bad");
    let expected = sha256_hex(&good);
    let err = download_files(&server.base, &[("c.gz", expected.as_str())], &dir, &mut |_, _| {}).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Download { .. }) && text.contains("does not match the expected"),
        "{text}"
    );
    assert!(!dir.join("c.gz").exists(), "a corrupted download must not be kept");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no temporary file either");

    let err = download_files(&server.base, &[("missing.gz", expected.as_str())], &dir, &mut |_, _| {}).unwrap_err();
    assert!(
        matches!(err, Error::Download { .. }) && err.to_string().contains("404"),
        "{err}"
    );
    assert!(!dir.join("missing.gz").exists());
}

#[test]
fn the_mnist_table_names_the_four_standard_files() {
    let names: Vec<&str> = MNIST_FILES.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz"
        ]
    );
    assert!(
        MNIST_FILES
            .iter()
            .all(|(_, h)| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// A server that accepts and never answers is given up on after the read timeout, naming the
/// host and the timeout (loopback only).
#[test]
fn a_silent_server_times_out_naming_the_host() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = std::thread::spawn(move || {
        // Accept, read nothing back, answer nothing: hold the connection for a while.
        let held = listener.accept().map(|(stream, _)| stream);
        std::thread::sleep(std::time::Duration::from_secs(3));
        drop(held);
    });
    let dir = temp("silent");
    let timeouts = shadergrad::data::download::Timeouts {
        connect: std::time::Duration::from_secs(2),
        read: std::time::Duration::from_millis(300),
    };
    let start = std::time::Instant::now();
    let err = shadergrad::data::download::download_files_with(
        &format!("http://{addr}"),
        &[("a.gz", "00")],
        &dir,
        &mut |_, _| {},
        timeouts,
    )
    .unwrap_err()
    .to_string();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains(&format!("{addr} sent nothing for 0.3 s")), "{err}");
    assert!(!dir.join("a.gz").exists());
    holder.join().unwrap();
}
