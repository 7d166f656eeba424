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

/// Temporary names that exist right now in this process (between a save's link and its
/// rename): what [`remove_unfinished_temps`] removes when a save does not finish in time.
static UNFINISHED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Held by a save for as long as its temporary name may exist. A signal handler that ends the
/// process takes it and never gives it back: the save under way finishes first (its name is
/// gone by its rename), and none starts after.
static NAMED_WINDOW: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long [`remove_unfinished_temps`] waits for a save under way to finish.
const FINISH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Makes sure no save of this process leaves a temporary file, for a signal handler that is
/// about to end the process (the examples install one for Ctrl-C and SIGTERM). A save under way
/// finishes first (waiting up to 5 s; after that its temporary file is removed instead, and the
/// file being replaced keeps its previous content). After this call every save in this process
/// waits forever: call it only right before the process exits.
///
/// Signal handlers run on their own thread (as the `ctrlc` crate's do), so the save they
/// interrupt goes on meanwhile; simply removing the names it had then raced with a save that
/// linked its name an instant later.
pub fn remove_unfinished_temps() {
    let deadline = std::time::Instant::now() + FINISH_WAIT;
    loop {
        match NAMED_WINDOW.try_lock() {
            Ok(gate) => return std::mem::forget(gate),
            Err(std::sync::TryLockError::Poisoned(gate)) => return std::mem::forget(gate.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(std::sync::TryLockError::WouldBlock) => break,
        }
    }
    let names = UNFINISHED.lock().unwrap_or_else(|p| p.into_inner());
    for name in names.iter() {
        let _ = std::fs::remove_file(name);
    }
}

/// Runs `f`, which may give `temp` a name, inside the named window: listed in [`UNFINISHED`]
/// and holding [`NAMED_WINDOW`]. The name is gone when the window closes: renamed by a save
/// that succeeded, removed here after one that failed. (It holds this process's PID, and the
/// window admits one save at a time, so nothing else can have made it.)
fn while_unfinished<R>(temp: &Path, f: impl FnOnce() -> R) -> R {
    let _window = NAMED_WINDOW.lock().unwrap_or_else(|p| p.into_inner());
    UNFINISHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(temp.to_path_buf());
    let result = f();
    let _ = std::fs::remove_file(temp);
    UNFINISHED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|p| p != temp);
    result
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
    #[cfg(target_os = "linux")]
    if let Some(result) = write_unnamed_then_rename(&target, &temp, bytes) {
        return result;
    }
    while_unfinished(&temp, || write_named_then_rename(&target, &temp, bytes))
}

/// Writes `bytes` to the temporary name `temp`, syncs it and renames it over `target`.
fn write_named_then_rename(target: &Path, temp: &Path, bytes: &[u8]) -> Result<()> {
    // This process's own leftover (a save that failed half way) goes first; `create_new` then
    // never follows a symlink or opens a FIFO someone put at the temporary name.
    if std::fs::symlink_metadata(temp).is_ok() {
        std::fs::remove_file(temp).map_err(io("remove the old temporary file", temp))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)
        .map_err(io("create", temp))?;
    file.write_all(bytes).map_err(io("write", temp))?;
    file.sync_all().map_err(io("write", temp))?;
    std::fs::rename(temp, target).map_err(io("rename a temporary file onto", target))?;
    // The rename itself must reach the disk before the file counts as saved.
    #[cfg(unix)]
    std::fs::File::open(folder_of(target))
        .and_then(|d| d.sync_all())
        .map_err(io("sync the folder of", target))?;
    Ok(())
}

/// An exclusive lock on an output (a run's folder or a checkpoint), held until dropped or until
/// the process ends however it ends (the operating system releases it: a killed run leaves no
/// stale lock). The lock file holds the holder's PID, for the message another run gets.
#[derive(Debug)]
pub struct OutputLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl OutputLock {
    /// Locks `lock_file` (created if missing) for this process, or fails with
    /// [`Error::InUse`] naming `what` and the holder's PID.
    pub fn acquire(lock_file: &Path, what: &Path) -> Result<OutputLock> {
        use std::io::{Read, Seek};
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_file)
            .map_err(io("create the lock file", lock_file))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::InUse {
                    path: what.to_path_buf(),
                    holder: if holder.is_empty() {
                        "another process".to_string()
                    } else {
                        format!("process {holder}")
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", lock_file)(e)),
        }
        file.set_len(0).map_err(io("write the lock file", lock_file))?;
        file.rewind().map_err(io("write the lock file", lock_file))?;
        file.write_all(std::process::id().to_string().as_bytes())
            .map_err(io("write the lock file", lock_file))?;
        Ok(OutputLock {
            _file: file,
            path: lock_file.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Linux: writes `bytes` to an unnamed file in `target`'s folder (`O_TMPFILE`), syncs it, gives
/// it the temporary name and renames it over `target` at once. A kill (SIGINT, SIGTERM, even
/// SIGKILL) while the bytes are written leaves nothing behind: the file has no name until
/// they are all on disk. `None` where the filesystem has no `O_TMPFILE` (or `/proc` is not
/// mounted): the caller then writes a named temporary file.
#[cfg(target_os = "linux")]
fn write_unnamed_then_rename(target: &Path, temp: &Path, bytes: &[u8]) -> Option<Result<()>> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let folder = folder_of(target);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o644)
        .open(&folder)
        .ok()?;
    if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_all()) {
        return Some(Err(io("write", temp)(e)));
    }
    if std::fs::symlink_metadata(temp).is_ok() {
        // This process's own leftover of a failed save.
        if let Err(e) = std::fs::remove_file(temp) {
            return Some(Err(io("remove the old temporary file", temp)(e)));
        }
    }
    let source = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    let dest = std::ffi::CString::new(temp.as_os_str().as_bytes()).ok()?;
    // SAFETY: both are valid NUL-terminated paths; linkat does not keep them.
    let linked_and_renamed = while_unfinished(temp, || {
        let linked = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                source.as_ptr(),
                libc::AT_FDCWD,
                dest.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        (linked == 0).then(|| std::fs::rename(temp, target).map_err(io("rename a temporary file onto", target)))
    });
    if let Err(e) = linked_and_renamed? {
        return Some(Err(e));
    }
    Some(
        std::fs::File::open(&folder)
            .and_then(|d| d.sync_all())
            .map_err(io("sync the folder of", target)),
    )
}
