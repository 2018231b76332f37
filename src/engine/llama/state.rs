//! A sequence's KV state, in a file (`llama_state_seq_save_file`/`_load_file`, which slot save
//! and restore write and read) or in host memory (`llama_state_seq_get_data_ext`/`_set_data_ext`,
//! which the prompt cache holds). llama-cpp-2 has these only on its own context type, which the
//! engine does not use (see `llama.rs`), so the raw calls live here, beside the context they act
//! on.

use std::ffi::CString;
use std::path::Path;

use llama_cpp_sys_2 as sys;

use super::Context;

/// llama.h's `LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY` (a `#define`, which the bindings lack).
const PARTIAL_ONLY: sys::llama_state_seq_flags = 1;

impl Context<'_> {
    /// Writes sequence `seq`'s KV cells and `tokens` (stored ahead of them, as given) to
    /// `path`; the bytes written, or `None` if llama.cpp could not (its log says why).
    pub fn seq_save_file(&mut self, seq: i32, path: &Path, tokens: &[i32]) -> Option<usize> {
        let path = c_path(path)?;
        // SAFETY: `ctx` is live and `&mut self` excludes other use of it; `path` is a
        // NUL-terminated string that outlives the call; `tokens` points at `tokens.len()`
        // initialized tokens, which llama.cpp only reads. llama.cpp catches its own exceptions
        // and returns 0 on failure.
        let written = unsafe {
            sys::llama_state_seq_save_file(
                self.ctx.as_ptr(),
                path.as_ptr(),
                seq,
                tokens.as_ptr(),
                tokens.len(),
            )
        };
        (written > 0).then_some(written)
    }

    /// Reads a file written by [`Self::seq_save_file`] (or by llama-server) into sequence
    /// `seq`: its tokens, and the bytes read. `None` if the file is missing, malformed, of
    /// another model shape, or does not fit in the KV cache (llama.cpp's log says which).
    pub fn seq_load_file(&mut self, seq: i32, path: &Path) -> Option<(Vec<i32>, usize)> {
        let path = c_path(path)?;
        let mut n_tokens = 0usize;
        // SAFETY: as in `seq_save_file`; with a null token buffer llama.cpp only reads the
        // file's header and writes the token count through the valid `&mut n_tokens`.
        let header = unsafe {
            sys::llama_state_seq_load_file(
                self.ctx.as_ptr(),
                path.as_ptr(),
                seq,
                std::ptr::null_mut(),
                0,
                &raw mut n_tokens,
            )
        };
        if header == 0 {
            return None;
        }
        // llama.cpp checked the count against the file's size, so this allocation is bounded.
        let mut tokens = vec![0i32; n_tokens.max(1)];
        // SAFETY: `tokens` has room for `tokens.len()` tokens, the capacity passed; llama.cpp
        // writes at most that many and the count through the valid `&mut n_tokens`.
        let read = unsafe {
            sys::llama_state_seq_load_file(
                self.ctx.as_ptr(),
                path.as_ptr(),
                seq,
                tokens.as_mut_ptr(),
                tokens.len(),
                &raw mut n_tokens,
            )
        };
        if read == 0 {
            return None;
        }
        tokens.truncate(n_tokens);
        Some((tokens, read))
    }

    /// The size of sequence `seq`'s state in bytes, which [`Self::seq_state`] takes.
    pub fn seq_state_size(&mut self, seq: i32) -> usize {
        self.state_size(seq, 0)
    }

    /// Sequence `seq`'s KV cells as the `size` bytes [`Self::seq_state_size`] gave; `None` if
    /// llama.cpp could not write them all.
    pub fn seq_state(&mut self, seq: i32, size: usize) -> Option<Vec<u8>> {
        self.read_state(seq, size, 0)
    }

    /// Replaces sequence `seq`'s KV cells with `state` from [`Self::seq_state`]; false if
    /// llama.cpp could not read it all (no room in the KV cache, or another model's state), in
    /// which case the sequence is left empty.
    pub fn set_seq_state(&mut self, seq: i32, state: &[u8]) -> bool {
        self.seq_rm(seq, None, None);
        if !self.write_state(seq, state, 0) {
            self.seq_rm(seq, None, None);
            return false;
        }
        true
    }

    /// The part of sequence `seq`'s state that cannot be cut back to a shorter prefix (the
    /// sliding-window layers' cells: llama.cpp's `LLAMA_STATE_SEQ_FLAGS_PARTIAL_ONLY`), for a
    /// context checkpoint; `None` if llama.cpp wrote nothing or not all of it.
    pub fn seq_partial_state(&mut self, seq: i32) -> Option<Vec<u8>> {
        match self.state_size(seq, PARTIAL_ONLY) {
            0 => None,
            size => self.read_state(seq, size, PARTIAL_ONLY),
        }
    }

    /// Puts back a checkpoint from [`Self::seq_partial_state`]: the sliding-window cells of
    /// sequence `seq` are replaced, the others left as they are. False if llama.cpp could not
    /// read it all.
    pub fn set_seq_partial_state(&mut self, seq: i32, state: &[u8]) -> bool {
        self.write_state(seq, state, PARTIAL_ONLY)
    }

    fn state_size(&mut self, seq: i32, flags: sys::llama_state_seq_flags) -> usize {
        // SAFETY: `ctx` is live and `&mut self` excludes other use of it.
        unsafe { sys::llama_state_seq_get_size_ext(self.ctx.as_ptr(), seq, flags) }
    }

    fn read_state(
        &mut self,
        seq: i32,
        size: usize,
        flags: sys::llama_state_seq_flags,
    ) -> Option<Vec<u8>> {
        let mut state = vec![0u8; size];
        // SAFETY: `state` has room for `size` bytes, the size passed; llama.cpp writes at most
        // that many.
        let written = unsafe {
            sys::llama_state_seq_get_data_ext(
                self.ctx.as_ptr(),
                state.as_mut_ptr(),
                size,
                seq,
                flags,
            )
        };
        (written == size).then_some(state)
    }

    /// False if llama.cpp did not read all of `state`.
    fn write_state(&mut self, seq: i32, state: &[u8], flags: sys::llama_state_seq_flags) -> bool {
        // SAFETY: `ctx` is live and `&mut self` excludes other use of it; `state` holds
        // `state.len()` initialized bytes, which llama.cpp only reads. It catches its own
        // exceptions and returns 0 on failure.
        let read = unsafe {
            sys::llama_state_seq_set_data_ext(
                self.ctx.as_ptr(),
                state.as_ptr(),
                state.len(),
                seq,
                flags,
            )
        };
        read == state.len()
    }
}

/// The path as a C string (`None` if it holds a NUL byte, which no file name can).
fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_encoded_bytes()).ok()
}
