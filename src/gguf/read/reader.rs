//! The reader under the GGUF parser: little-endian numbers and length-prefixed strings from a
//! file or from a remote file's first bytes, every read and skip checked against the file's
//! length first, so that a length a header claims never allocates or seeks past the end.

use super::MAX_STRING;
use crate::gguf::GgufError;
use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

/// Where the reader's bytes come from: a buffered file, or the first bytes of a remote one. A
/// skip past the end of a prefix is allowed; the next read reports it.
pub(super) trait Source: Read {
    fn skip(&mut self, n: i64) -> std::io::Result<()>;
}

impl Source for BufReader<File> {
    fn skip(&mut self, n: i64) -> std::io::Result<()> {
        self.seek_relative(n)
    }
}

impl Source for Cursor<&[u8]> {
    fn skip(&mut self, n: i64) -> std::io::Result<()> {
        self.set_position(self.position().saturating_add_signed(n));
        Ok(())
    }
}

pub(super) struct Reader<'a, S> {
    pub(super) inner: S,
    pub(super) pos: u64,
    pub(super) len: u64,
    pub(super) path: &'a Path,
}

impl<S: Source> Reader<'_, S> {
    pub(super) fn truncated(&self, what: &str) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_owned(),
            what: what.to_owned(),
            offset: self.len,
        }
    }

    pub(super) fn corrupt(&self, problem: String) -> GgufError {
        GgufError::Corrupt {
            path: self.path.to_owned(),
            problem,
        }
    }

    pub(super) fn bytes<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut buf = [0u8; N];
        self.exact(&mut buf, what)?;
        Ok(buf)
    }

    pub(super) fn exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), GgufError> {
        if self.pos + buf.len() as u64 > self.len {
            return Err(self.truncated(what));
        }
        self.inner.read_exact(buf).map_err(|source| GgufError::Io {
            path: self.path.to_owned(),
            source,
        })?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    pub(super) fn skip(&mut self, n: u64, what: &str) -> Result<(), GgufError> {
        if n > self.len - self.pos {
            return Err(self.truncated(what));
        }
        let n = i64::try_from(n).map_err(|_| self.truncated(what))?;
        self.inner.skip(n).map_err(|source| GgufError::Io {
            path: self.path.to_owned(),
            source,
        })?;
        self.pos += n as u64;
        Ok(())
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.bytes(what)?))
    }

    pub(super) fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.bytes(what)?))
    }

    pub(super) fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let buf = self.string_bytes(what)?;
        String::from_utf8(buf).map_err(|_| self.corrupt(format!("{what} is not UTF-8")))
    }

    /// A string's bytes, UTF-8 or not.
    pub(super) fn string_bytes(&mut self, what: &str) -> Result<Vec<u8>, GgufError> {
        let mut buf = Vec::new();
        self.string_into(&mut buf, what)?;
        Ok(buf)
    }

    /// A string's bytes into `buf` (replacing what it held): a vocabulary's tokens reuse one
    /// buffer.
    pub(super) fn string_into(&mut self, buf: &mut Vec<u8>, what: &str) -> Result<(), GgufError> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(self.corrupt(format!(
                "{what} at byte {at} claims {len} bytes (the limit is {MAX_STRING})"
            )));
        }
        if len > self.len - self.pos {
            return Err(self.truncated(what));
        }
        buf.clear();
        buf.resize(len as usize, 0);
        self.exact(buf, what)
    }

    pub(super) fn skip_string(&mut self, what: &str) -> Result<(), GgufError> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > MAX_STRING {
            return Err(self.corrupt(format!(
                "{what} at byte {at} claims {len} bytes (the limit is {MAX_STRING})"
            )));
        }
        self.skip(len, what)
    }
}
