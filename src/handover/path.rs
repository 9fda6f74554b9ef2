//! Where the upgrade socket may live: a directory that nobody but this user (or root) could have
//! put there, and a socket file of this user's. The upgrade socket hands out the listening
//! sockets and tells the running process to drain, so a path another local user controls (a
//! directory they created, or can write into, or a symlink they planted) would let them
//! impersonate either end. Such a path is refused with the reason, never followed; `handover.rs`
//! connects and binds only after [`secure_path`] said yes. The default directory
//! (`config::default_upgrade_dir`) is created here, mode 0700, when it is missing.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::Path;

/// Checks (and, when missing, creates with mode 0700) the directory of the upgrade socket
/// `path`, and the socket file if it exists. Refused, with the reason:
/// - a directory (or socket) that is a symbolic link: it is never followed;
/// - a directory that is not this user's or root's, or that its group or others may write into
///   (anyone who can write there could swap the socket);
/// - a socket file that is not this user's, or a file there that is not a socket.
///
/// Only the last component of a missing directory is created (its parent must exist).
pub fn secure_path(path: &Path) -> Result<(), String> {
    secure_path_for(path, own_uid())
}

/// [`secure_path`] as user `uid` would see it.
fn secure_path_for(path: &Path, uid: u32) -> Result<(), String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                // created by someone else meanwhile: checked below like any other
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(format!(
                        "cannot create the directory {}: {e}",
                        dir.display()
                    ))
                }
            }
            std::fs::symlink_metadata(dir)
                .map_err(|e| format!("cannot read the directory {}: {e}", dir.display()))?
        }
        Err(e) => return Err(format!("cannot read the directory {}: {e}", dir.display())),
    };
    let dir_name = dir.display();
    if meta.file_type().is_symlink() {
        return Err(format!(
            "the directory {dir_name} is a symbolic link: refused (it is never followed)"
        ));
    }
    if !meta.is_dir() {
        return Err(format!("{dir_name} is not a directory"));
    }
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(format!(
            "the directory {dir_name} belongs to uid {}, not to this user ({uid}) or root: refused",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the directory {dir_name} can be written by others (mode {:o}): refused; use a \
             directory only this user can write (0700 or 0755)",
            meta.mode() & 0o7777
        ));
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        Ok(meta) if meta.file_type().is_symlink() => Err(format!(
            "{} is a symbolic link: refused (it is never followed)",
            path.display()
        )),
        Ok(meta) if !meta.file_type().is_socket() => {
            Err(format!("{} exists and is not a socket", path.display()))
        }
        Ok(meta) if meta.uid() != uid => Err(format!(
            "the socket {} belongs to uid {}, not to this user ({uid}): refused",
            path.display(),
            meta.uid()
        )),
        Ok(_) => Ok(()),
    }
}

fn own_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn fresh(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrule-path-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_missing_directory_is_created_for_its_user_alone() {
        let base = fresh("create");
        let dir = base.join("ferrule-1000");
        secure_path(&dir.join("up.sock")).unwrap();
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o700);
        // and is accepted again, as is a socket of this user's in it
        drop(std::os::unix::net::UnixListener::bind(dir.join("up.sock")).unwrap());
        secure_path(&dir.join("up.sock")).unwrap();
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let base = fresh("writable");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = secure_path(&base.join("up.sock")).unwrap_err();
        assert!(e.contains("can be written by others (mode 777)"), "{e}");
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(secure_path(&base.join("up.sock")).is_err());
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(secure_path(&base.join("up.sock")).is_err());
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn another_users_directory_or_socket_is_refused() {
        let base = fresh("owner");
        let owner = std::fs::metadata(&base).unwrap().uid();
        drop(std::os::unix::net::UnixListener::bind(base.join("up.sock")).unwrap());
        // as seen by a user that is neither the owner nor root
        let stranger = owner.wrapping_add(4242).max(1);
        let e = secure_path_for(&base.join("up.sock"), stranger).unwrap_err();
        if owner == 0 {
            // a directory of root's is trusted; the socket of someone else's in it is not
            assert!(e.contains("the socket"), "{e}");
        } else {
            assert!(e.contains("the directory"), "{e}");
        }
        assert!(e.contains(&format!("belongs to uid {owner}")), "{e}");
        // its owner takes it
        secure_path_for(&base.join("up.sock"), owner).unwrap();
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn symlinks_are_refused_not_followed() {
        let base = fresh("symlink");
        let real = base.join("real");
        std::fs::create_dir(&real).unwrap();
        let link = base.join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = secure_path(&link.join("up.sock")).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        drop(std::os::unix::net::UnixListener::bind(real.join("up.sock")).unwrap());
        std::os::unix::fs::symlink(real.join("up.sock"), base.join("up.sock")).unwrap();
        let e = secure_path(&base.join("up.sock")).unwrap_err();
        assert!(e.contains("symbolic link"), "{e}");
        std::fs::write(real.join("file"), b"x").unwrap();
        let e = secure_path(&real.join("file")).unwrap_err();
        assert!(e.contains("not a socket"), "{e}");
        let _ = std::fs::remove_dir_all(base);
    }
}
