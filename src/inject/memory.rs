//! The target's memory through `/proc/<pid>/mem`: positioned reads and writes on a file,
//! so no `unsafe` is needed. Opening it for writing takes ptrace rights over the target
//! (same uid and Yama allowing it, or `CAP_SYS_PTRACE`); the kernel writes even into
//! read-only pages, but the handshake only writes into the thread state (heap).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;

/// An open `/proc/<pid>/mem`.
pub struct Memory {
    /// The file.
    file: File,
}

impl Memory {
    /// Opens the memory of `pid` for reading and writing.
    pub fn open(pid: i32) -> io::Result<Memory> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))?;
        Ok(Memory { file })
    }

    /// Fills `buf` from `address`.
    pub fn read(&self, address: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, address)
    }

    /// The little-endian `u64` at `address`.
    pub fn read_u64(&self, address: u64) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read(address, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// The little-endian `i32` at `address`.
    pub fn read_i32(&self, address: u64) -> io::Result<i32> {
        let mut b = [0u8; 4];
        self.read(address, &mut b)?;
        Ok(i32::from_le_bytes(b))
    }

    /// Writes `bytes` at `address`.
    pub fn write(&self, address: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_reads_back_what_was_written() {
        // The test's own process: a heap buffer, written through /proc/self/mem.
        let buf = Box::new([0u8; 16]);
        let address = buf.as_ptr() as u64;
        let mem = Memory::open(std::process::id() as i32).unwrap();
        mem.write(address + 4, &7i32.to_le_bytes()).unwrap();
        assert_eq!(mem.read_i32(address + 4).unwrap(), 7);
        assert_eq!(mem.read_u64(address).unwrap(), 7u64 << 32);
        assert!(mem.read_u64(8).is_err(), "page zero is never mapped");
    }
}
