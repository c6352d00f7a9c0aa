//! Files that hold Secrets (backups, with their data) or their metadata (snapshots) are created
//! 0600 in 0700 folders, whatever the umask: under the usual 022 they were readable by every
//! account on the machine.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents 0700. Folders that already exist are left alone
/// (use `restrict` on the ones that are the program's own).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut p = dir;
    while !p.as_os_str().is_empty() && !p.exists() {
        missing.push(p);
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(DIR_MODE).create(d) {
            Ok(()) => restrict(d)?,
            // Another writer made it in between: it is a folder, which is all that is needed.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sets a folder that is the program's own to 0700 (the umask never widens `mode`, but a
/// folder made by an earlier version, or by hand, may be wider).
pub fn restrict(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
}

/// Writes `bytes` to `path` 0600 through a temporary file and a rename, so the file is whole
/// or absent; `durable` also syncs the file and its folder (backups).
pub fn write(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let tmp = path.with_extension("driftsweep-tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp)?;
    // `mode` applies only when the file is created; a leftover temporary file keeps its own.
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    fs::rename(&tmp, path)?;
    if durable {
        // The rename is durable only once the folder is.
        if let Some(parent) = path.parent()
            && let Ok(dir) = fs::File::open(parent)
        {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}
