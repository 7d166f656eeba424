//! The IDX reader and MNIST loader on small generated files, including corrupt ones; batch order.

mod common;

use std::io::Write;
use std::path::Path;

use shadergrad::Error;
use shadergrad::data::idx::{IdxArray, encode_idx, parse_idx, read_idx};
use shadergrad::data::{Mnist, batches, epoch_order};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn temp_dir(name: &str) -> common::TempDir {
    common::TempDir::new(&format!("test-{name}"))
}

fn images(n: usize) -> IdxArray {
    IdxArray {
        dims: vec![n, 2, 3],
        data: (0..n * 6).map(|i| (i * 37 % 256) as u8).collect(),
    }
}

fn labels(n: usize) -> IdxArray {
    IdxArray {
        dims: vec![n],
        data: (0..n).map(|i| (i % 10) as u8).collect(),
    }
}

/// Writes a four-file MNIST folder; `name(stem, kind)` picks each file's name.
fn write_mnist(dir: &Path, train: usize, test: usize, compress: bool, dotted: bool) {
    let files = [
        ("train-images", "idx3-ubyte", encode_idx(&images(train))),
        ("train-labels", "idx1-ubyte", encode_idx(&labels(train))),
        ("t10k-images", "idx3-ubyte", encode_idx(&images(test))),
        ("t10k-labels", "idx1-ubyte", encode_idx(&labels(test))),
    ];
    for (stem, kind, bytes) in files {
        let name = if dotted {
            format!("{stem}.{kind}")
        } else {
            format!("{stem}-{kind}")
        };
        let (name, bytes) = if compress {
            (format!("{name}.gz"), gzip(&bytes))
        } else {
            (name, bytes)
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn idx_round_trips_raw_and_gzipped() {
    let a = images(5);
    let raw = encode_idx(&a);
    assert_eq!(parse_idx(&raw, Path::new("raw")).unwrap(), a);
    assert_eq!(parse_idx(&gzip(&raw), Path::new("gz")).unwrap(), a);
}

#[test]
fn mnist_folder_loads_with_every_naming() {
    for (compress, dotted) in [(true, false), (false, false), (false, true), (true, true)] {
        let dir = temp_dir(&format!("mnist-{compress}-{dotted}"));
        write_mnist(&dir, 7, 3, compress, dotted);
        let m = Mnist::load(&dir).unwrap();
        assert_eq!(
            (m.train.len(), m.test.len(), m.train.dim(), m.train.classes()),
            (7, 3, 6, Some(10))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn missing_files_name_what_was_looked_for() {
    let dir = temp_dir("missing");
    let err = Mnist::load(&dir).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            Error::DataNotFound {
                what: "training images",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("train-images-idx3-ubyte.gz") && text.contains("train-images.idx3-ubyte"),
        "{text}"
    );
}

fn corrupt_message(bytes: &[u8]) -> String {
    match parse_idx(bytes, Path::new("bad.idx")) {
        Err(e @ Error::CorruptFile { .. }) => e.to_string(),
        other => panic!("expected a corrupt-file error, got {other:?}"),
    }
}

#[test]
fn corrupt_idx_files_give_errors_naming_the_problem() {
    let good = encode_idx(&images(4));
    let mut bad_magic = good.clone();
    bad_magic[0] = 1;
    assert!(corrupt_message(&bad_magic).contains("bad magic number"));
    let mut bad_type = good.clone();
    bad_type[2] = 0x0d;
    assert!(corrupt_message(&bad_type).contains("element type 0x0d"));
    let mut bad_rank = good.clone();
    bad_rank[3] = 9;
    assert!(corrupt_message(&bad_rank).contains("rank 9"));
    assert!(corrupt_message(&good[..3]).contains("too short"));
    assert!(corrupt_message(&good[..10]).contains("header ends before dimension"));
    let truncated = &good[..good.len() - 1];
    assert!(corrupt_message(truncated).contains("= 24 bytes of data, but the file holds 23"));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(corrupt_message(&trailing).contains("but the file holds 25"));
    assert!(corrupt_message(&gzip(truncated)).contains("but the file holds 23"));
    let mut longer = good.clone();
    longer.push(7);
    assert!(corrupt_message(&gzip(&longer)).contains("more than 24"));
    let mut damaged = gzip(&good);
    let mid = damaged.len() / 2;
    damaged.truncate(mid);
    let msg = corrupt_message(&damaged);
    assert!(msg.contains("damaged") || msg.contains("holds"), "{msg}");
    assert!(
        corrupt_message(&encode_idx(&IdxArray {
            dims: vec![0, 28, 28],
            data: vec![]
        }))
        .contains("hold no data")
    );
}

#[test]
fn lying_headers_do_not_allocate_what_they_claim() {
    // Claims 4 billion × 4 billion × 4 billion bytes: must fail fast on the header's word alone.
    let mut lie = vec![0, 0, 8, 3];
    for _ in 0..3 {
        lie.extend_from_slice(&u32::MAX.to_be_bytes());
    }
    lie.extend_from_slice(&[1, 2, 3]);
    let msg = corrupt_message(&lie);
    assert!(msg.contains("overflow") || msg.contains("holds"), "{msg}");
    // 1 GiB claimed inside a tiny gzip stream: rejected before decompressing.
    let mut big = vec![0, 0, 8, 1];
    big.extend_from_slice(&(1u32 << 30).to_be_bytes());
    big.extend_from_slice(&[0; 16]);
    assert!(corrupt_message(&gzip(&big)).contains("more than"));
}

#[test]
fn inconsistent_mnist_folders_are_rejected() {
    let dir = temp_dir("inconsistent");
    write_mnist(&dir, 5, 3, false, false);
    std::fs::write(dir.join("train-labels-idx1-ubyte"), encode_idx(&labels(4))).unwrap();
    let err = Mnist::load(&dir).unwrap_err().to_string();
    assert!(err.contains("4 labels for 5 images"), "{err}");

    std::fs::write(
        dir.join("train-labels-idx1-ubyte"),
        encode_idx(&IdxArray {
            dims: vec![5],
            data: vec![0, 1, 2, 11, 3],
        }),
    )
    .unwrap();
    let err = Mnist::load(&dir).unwrap_err().to_string();
    assert!(err.contains("label 11 of sample 3"), "{err}");

    std::fs::write(dir.join("train-labels-idx1-ubyte"), encode_idx(&images(5))).unwrap();
    let err = Mnist::load(&dir).unwrap_err().to_string();
    assert!(err.contains("labels must have 1 dimension"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn read_idx_reports_unreadable_paths() {
    let err = read_idx(Path::new("/nonexistent/shadergrad.idx")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/shadergrad.idx"));
}

#[test]
fn epoch_order_is_a_seeded_permutation() {
    let a = epoch_order(1000, 42, 0, true);
    assert_eq!(a, epoch_order(1000, 42, 0, true), "same seed and epoch, same order");
    assert_ne!(a, epoch_order(1000, 42, 1, true), "each epoch reshuffles");
    assert_ne!(a, epoch_order(1000, 43, 0, true), "the seed matters");
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_eq!(epoch_order(5, 1, 0, false), vec![0, 1, 2, 3, 4]);
}

#[test]
fn batches_keep_the_last_partial_batch_unless_dropped() {
    let order: Vec<u32> = (0..10).collect();
    let sizes: Vec<usize> = batches(&order, 4, false).map(|b| b.len()).collect();
    assert_eq!(sizes, vec![4, 4, 2]);
    let sizes: Vec<usize> = batches(&order, 4, true).map(|b| b.len()).collect();
    assert_eq!(sizes, vec![4, 4]);
}

#[test]
fn datasets_reject_inconsistent_parts_with_distinct_errors() {
    use shadergrad::data::Dataset;
    assert!(Dataset::classification(vec![0.0; 6], 3, vec![0, 1], 2).is_ok());
    let err = Dataset::classification(vec![0.0; 6], 3, vec![0], 2).unwrap_err();
    assert!(
        matches!(err, Error::InvalidDataset(_)) && err.to_string().contains("2 samples but 1 labels"),
        "{err}"
    );
    let err = Dataset::classification(vec![0.0; 7], 3, vec![0, 1], 2).unwrap_err();
    assert!(
        matches!(err, Error::InvalidDataset(_)) && err.to_string().contains("not a whole number"),
        "{err}"
    );
    let err = Dataset::regression(vec![0.0; 6], 3, vec![0.0; 5], 3).unwrap_err();
    assert!(
        matches!(err, Error::InvalidDataset(_)) && err.to_string().contains("need 6 target values"),
        "{err}"
    );
    let err = Dataset::classification(vec![0.0; 6], 3, vec![0, 2], 2).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LabelOutOfRange {
                row: 1,
                label: 2,
                classes: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = Dataset::classification(vec![0.0, f32::NAN, 0.0], 3, vec![0], 2).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NonFiniteInput {
                what: "feature",
                sample: 0,
                index: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = Dataset::regression(vec![0.0; 3], 3, vec![f32::INFINITY], 1).unwrap_err();
    assert!(matches!(err, Error::NonFiniteInput { what: "target", .. }), "{err}");
    let err = Dataset::classification(vec![], 3, vec![], 2).unwrap_err();
    assert!(matches!(err, Error::EmptyDataset { .. }), "{err}");
}

/// A gzip file of several members (`cat a.gz b.gz`, bgzip) reads whole, as `gzip -d` does.
#[test]
fn multi_member_gzip_reads_every_member() {
    use std::io::Write;
    let array = shadergrad::data::idx::IdxArray {
        dims: vec![3, 28, 28],
        data: (0..3 * 784).map(|i| (i % 251) as u8).collect(),
    };
    let raw = shadergrad::data::idx::encode_idx(&array);
    let member = |bytes: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    };
    let (first, second) = raw.split_at(1000);
    let joined = [member(first), member(second)].concat();
    let read = shadergrad::data::idx::parse_idx(&joined, std::path::Path::new("two-members.gz")).unwrap();
    assert_eq!(read.dims, array.dims);
    assert_eq!(read.data, array.data);
}

/// The bundled sample from its files' bytes (as the page fetches them) is the sample loaded from
/// its folder; a truncated file is named.
#[test]
fn mnist_from_idx_bytes_equals_the_folder() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist-sample");
    let bytes = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let (ti, tl) = (bytes("train-images-idx3-ubyte.gz"), bytes("train-labels-idx1-ubyte.gz"));
    let (ei, el) = (bytes("t10k-images-idx3-ubyte.gz"), bytes("t10k-labels-idx1-ubyte.gz"));
    let from_bytes = Mnist::from_idx_bytes((&ti, &tl), (&ei, &el), Path::new("page")).unwrap();
    let from_dir = Mnist::load(&dir).unwrap();
    for (a, b) in [(&from_bytes.train, &from_dir.train), (&from_bytes.test, &from_dir.test)] {
        assert_eq!((a.len(), a.dim()), (b.len(), b.dim()));
        assert_eq!(a.features(), b.features());
        assert_eq!(a.targets(), b.targets());
    }
    let err = Mnist::from_idx_bytes((&ti[..ti.len() / 2], &tl), (&ei, &el), Path::new("page")).unwrap_err();
    assert!(err.to_string().contains("train-images-idx3-ubyte.gz"), "{err}");
}
