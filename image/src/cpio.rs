//! A deterministic `newc` cpio archive writer (Linux `Documentation/driver-api/early-userspace/
//! buffer-format.rst`; the format `usr/gen_init_cpio.c` writes). Reproducibility comes from
//! the input alone: entries sorted by path, parents before children, inode numbers assigned
//! in that order, mtime 0, uid/gid 0, fixed modes, no device numbers.

use std::collections::BTreeMap;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory (mode 0755).
    Dir,
    /// A regular file with its mode bits (0755 for executables, 0644 otherwise).
    File {
        /// Contents.
        data: Vec<u8>,
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link to `target`.
    Symlink(String),
    /// A character device (e.g. `/dev/console` 5:1), mode 0600.
    CharDev {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

/// An archive being assembled: paths (without a leading `/`) to nodes.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Node>,
}

impl Archive {
    /// Adds `node` at `path`, creating its parent directories.
    pub fn insert(&mut self, path: &str, node: Node) {
        let path = path.trim_start_matches('/').to_string();
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert(Node::Dir);
        }
        self.entries.insert(path, node);
    }

    /// Paths and nodes in archive order.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.entries.iter()
    }

    /// The `newc` bytes, `TRAILER!!!` included, padded to 512 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, node)) in (1u32..).zip(self.entries.iter()) {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match node {
                Node::Dir => (0o040_755, &[], (0, 0)),
                Node::File { data, mode } => (0o100_000 | mode, data, (0, 0)),
                Node::Symlink(t) => (0o120_777, t.as_bytes(), (0, 0)),
                Node::CharDev { major, minor } => (0o020_600, &[], (*major, *minor)),
            };
            let nlink = if matches!(node, Node::Dir) { 2 } else { 1 };
            header(&mut out, ino, mode, nlink, data.len(), rdev, path);
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        header(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!");
        while out.len() % 512 != 0 {
            out.push(0);
        }
        out
    }
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) {
    let size = u32::try_from(size).unwrap_or(u32::MAX);
    let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
    // rdevminor, namesize, check
    let fields = [
        ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_output_is_stable() {
        let mut a = Archive::default();
        a.insert(
            "/lib/modules/x.ko",
            Node::File {
                data: b"ko".to_vec(),
                mode: 0o644,
            },
        );
        a.insert(
            "/init",
            Node::File {
                data: vec![1, 2, 3],
                mode: 0o755,
            },
        );
        let names: Vec<_> = a.entries().map(|(p, _)| p.clone()).collect();
        assert_eq!(names, ["init", "lib", "lib/modules", "lib/modules/x.ko"]);
        let b = a.to_bytes();
        assert_eq!(b, a.clone().to_bytes());
        assert_eq!(b.len() % 512, 0);
        assert!(b.starts_with(b"070701"));
    }
}
