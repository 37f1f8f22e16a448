//! A writer for the `newc` cpio format, the one Linux unpacks as an initramfs
//! (Linux's `Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Written here rather than calling `cpio(1)` so the archive's owners, modes
//! and device nodes do not depend on the host's files or on running as root,
//! and so a run can build its small payload archive in memory.

use std::collections::BTreeSet;

/// An archive being built in memory. Parent folders are added automatically.
pub struct Archive {
    bytes: Vec<u8>,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

impl Default for Archive {
    fn default() -> Self {
        Self::new()
    }
}

impl Archive {
    pub fn new() -> Self {
        Archive {
            bytes: Vec::new(),
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    /// Adds a folder (and its parents) with mode 0755.
    pub fn dir(&mut self, path: &str) {
        let path = clean(path);
        if path.is_empty() || self.dirs.contains(path) {
            return;
        }
        self.parents(path);
        self.dirs.insert(path.to_string());
        self.entry(path, S_IFDIR | 0o755, (0, 0), &[]);
    }

    /// Adds a regular file with permission bits `mode` (e.g. 0o755).
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        let path = clean(path);
        self.parents(path);
        self.entry(path, S_IFREG | (mode & 0o7777), (0, 0), data);
    }

    /// Adds a symbolic link `path` pointing at `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let path = clean(path);
        self.parents(path);
        self.entry(path, S_IFLNK | 0o777, (0, 0), target.as_bytes());
    }

    /// Adds a character device node.
    pub fn char_device(&mut self, path: &str, mode: u32, major: u32, minor: u32) {
        let path = clean(path);
        self.parents(path);
        self.entry(path, S_IFCHR | (mode & 0o7777), (major, minor), &[]);
    }

    /// Ends the archive with its trailer and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, 0, 0);
        self.bytes.extend_from_slice(b"TRAILER!!!\0");
        self.pad();
        self.bytes
    }

    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn entry(&mut self, path: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR == S_IFDIR { 2 } else { 1 };
        self.header_full(path, ino, mode, nlink, data.len(), rdev);
        self.bytes.extend_from_slice(path.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn header(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, size: usize) {
        self.header_full(name, ino, mode, nlink, size, (0, 0));
    }

    fn header_full(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        size: usize,
        rdev: (u32, u32),
    ) {
        let size = u32::try_from(size).expect("a file in the initramfs is larger than 4 GiB");
        let name_size = name.len() as u32 + 1;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize,
        // devmajor, devminor, rdevmajor, rdevminor, namesize, check
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, name_size, 0,
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }
}

fn clean(path: &str) -> &str {
    path.trim_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Entry names and sizes, read back by a minimal parser.
    fn list(bytes: &[u8]) -> Vec<(String, u32, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(&bytes[at..at + 6], b"070701");
            let field = |i: usize| {
                let s = std::str::from_utf8(&bytes[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
                u32::from_str_radix(s, 16).unwrap()
            };
            let (mode, size, name_size) = (field(1), field(6) as usize, field(11) as usize);
            let name_at = at + 110;
            let name = std::str::from_utf8(&bytes[name_at..name_at + name_size - 1])
                .unwrap()
                .to_string();
            let data_at = (name_at + name_size).next_multiple_of(4);
            at = (data_at + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(at, bytes.len());
                return out;
            }
            out.push((name, mode, size));
        }
    }

    #[test]
    fn parents_come_first_and_once() {
        let mut a = Archive::new();
        a.file("/usr/bin/tool", 0o755, b"12345");
        a.symlink("usr/bin/alias", "tool");
        a.dir("usr");
        let entries = list(&a.finish());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["usr", "usr/bin", "usr/bin/tool", "usr/bin/alias"]);
        assert_eq!(entries[2].1, S_IFREG | 0o755);
        assert_eq!(entries[2].2, 5);
        assert_eq!(entries[3].1 & S_IFLNK, S_IFLNK);
    }

    #[test]
    fn cpio_tool_agrees() {
        // The system's cpio, when present, must read our archives.
        if Command::new("cpio").arg("--version").output().is_err() {
            return;
        }
        let mut a = Archive::new();
        a.file("payload/plan", 0o755, b"echo hi\n");
        a.char_device("dev/console", 0o600, 5, 1);
        let path =
            std::env::temp_dir().join(format!("xtask-cpio-test-{}.cpio", std::process::id()));
        std::fs::write(&path, a.finish()).unwrap();
        let out = Command::new("cpio")
            .args(["-t", "-v", "-F"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("payload/plan"), "{text}");
        assert!(text.contains("dev/console"), "{text}");
    }
}
