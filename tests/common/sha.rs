//! SHA-256 and git's SHA-1 object ids for the fake Hub and the cache checks of the hub tests:
//! the Hub names LFS files by the SHA-256 of their content and other files by their git blob
//! SHA-1, and the tests check that every blob in a cache hashes to its name.

#![allow(dead_code)]

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    format!("{:x}", Sha256::digest(data))
}

/// SHA-1 of `data`, lowercase hex.
pub fn sha1_hex(data: &[u8]) -> String {
    format!("{:x}", Sha1::digest(data))
}

/// Git's object id of a blob: SHA-1 of `blob <len>\0` and the content.
pub fn git_blob_sha1(data: &[u8]) -> String {
    let mut object = format!("blob {}\0", data.len()).into_bytes();
    object.extend_from_slice(data);
    sha1_hex(&object)
}
