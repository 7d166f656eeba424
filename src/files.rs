//! Writing files so that nothing is lost: atomic replacement (temporary file, fsync, rename,
//! fsync of the folder), refusing to write over anything but a regular file, checking a
//! destination before long work starts, and cleaning up temporary files a kill left behind.
//!
//! Symlinks are written *through*: the file the link points to is replaced and the link stays,
//! so a checkpoint path linked to another disk keeps working.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// An I/O error saying what was being done to which path.
pub(crate) fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Links followed at most, so a loop of links is an error rather than a hang.
const MAX_LINKS: usize = 32;

/// What a non-regular file is, for messages.
fn describe(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// The file a write to `path` really replaces: `path` itself, or the end of its chain of
/// symlinks. It must be a regular file or not exist yet, in a folder that exists and that this
/// process can create files in (checked by creating and removing a probe file).
pub fn check_destination(path: &Path) -> Result<PathBuf> {
    let mut target = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&target).map_err(io("read the link", &target))?;
                target = match target.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            Ok(meta) if meta.is_file() => return check_folder(path, target),
            Ok(meta) => {
                return Err(Error::NotARegularFile {
                    action: "write",
                    path: target,
                    kind: describe(meta.file_type()),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return check_folder(path, target),
            Err(e) => return Err(io("inspect", &target)(e)),
        }
    }
    Err(Error::NotARegularFile {
        action: "write",
        path: path.to_path_buf(),
        kind: "a loop of symlinks",
    })
}

/// Opens a user-named file for reading only if it is (or a symlink leads to) a regular file:
/// a FIFO would block the open until a writer comes, and a device such as `/dev/zero` never ends.
/// Refused with the same [`Error::NotARegularFile`] a write gets.
pub fn open_regular(path: &Path, action: &'static str) -> Result<std::fs::File> {
    let meta = std::fs::metadata(path).map_err(io(action, path))?;
    if !meta.is_file() {
        return Err(Error::NotARegularFile {
            action: "read",
            path: path.to_path_buf(),
            kind: describe(meta.file_type()),
        });
    }
    std::fs::File::open(path).map_err(io(action, path))
}

/// Reads a whole user-named regular file (see [`open_regular`]).
pub fn read_regular(path: &Path, action: &'static str) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_regular(path, action)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(action, path))?;
    Ok(bytes)
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn check_folder(asked: &Path, target: PathBuf) -> Result<PathBuf> {
    let dir = folder_of(&target);
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::NotARegularFile {
                action: "write",
                path: dir,
                kind: "not a folder",
            });
        }
        Err(e) => return Err(io("open the folder of", asked)(e)),
    }
    // `create_new`: never follows a symlink or reuses a file that is already there, and only
    // the probe this call created is removed.
    let probe = dir.join(format!(".shadergrad-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("create files in the folder of", asked)(e)),
    }
    Ok(target)
}

/// The temporary file this process writes `target` through.
fn temp_for(target: &Path) -> PathBuf {
    folder_of(target).join(format!("{}{}", temp_prefix(target), std::process::id()))
}

fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    format!(".{name}.tmp-")
}

/// Removes temporary files of `target` left by processes that no longer run (a kill during a
/// save). Returns how many were removed. Liveness is judged from this machine's `/proc`: a
/// writer in another PID namespace or on another host sharing the folder looks dead, which is
/// one more reason two processes must not save to the same path.
pub fn remove_stale_temps(target: &Path) -> usize {
    let prefix = temp_prefix(target);
    let Ok(entries) = std::fs::read_dir(folder_of(target)) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !process_alive(pid) && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` still runs (Linux: its `/proc` entry; elsewhere assumed alive, so
/// nothing another process may be writing is removed).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Writes `bytes` to `path` so that the file is either the old one or the complete new one,
/// writing through symlinks and refusing anything but a regular file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = check_destination(path)?;
    remove_stale_temps(&target);
    let temp = temp_for(&target);
    let result = (|| {
        // This process's own leftover (a save that failed half way) goes first; `create_new`
        // then never follows a symlink or opens a FIFO someone put at the temporary name.
        if std::fs::symlink_metadata(&temp).is_ok() {
            std::fs::remove_file(&temp).map_err(io("remove the old temporary file", &temp))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(io("create", &temp))?;
        file.write_all(bytes).map_err(io("write", &temp))?;
        file.sync_all().map_err(io("write", &temp))?;
        std::fs::rename(&temp, &target).map_err(io("rename a temporary file onto", &target))?;
        // The rename itself must reach the disk before the file counts as saved.
        #[cfg(unix)]
        std::fs::File::open(folder_of(&target))
            .and_then(|d| d.sync_all())
            .map_err(io("sync the folder of", &target))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
