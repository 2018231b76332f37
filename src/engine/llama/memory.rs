//! The context's KV cache, sequence by sequence (`llama_memory_*`): removing, copying and
//! shifting positions, as the worker reuses cached prefixes, shares a group's prompt and
//! shifts a full context.

use llama_cpp_sys_2 as sys;

use super::Context;

impl Context<'_> {
    /// Removes positions `p0..p1` (`None`: from the start, to the end) of a sequence from the
    /// KV cache; false if the cache cannot remove part of a sequence.
    pub fn seq_rm(&mut self, seq: i32, p0: Option<u32>, p1: Option<u32>) -> bool {
        let pos = |p: Option<u32>| p.map_or(-1, |p| i32::try_from(p).unwrap_or(i32::MAX));
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_rm(mem, seq, pos(p0), pos(p1))
        }
    }

    /// Copies every cell of sequence `src` to sequence `dst` (a group's shared prompt).
    pub fn seq_cp(&mut self, src: i32, dst: i32) {
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_cp(mem, src, dst, -1, -1);
        }
    }

    /// Adds `delta` to the positions `p0..p1` of a sequence (a context shift).
    pub fn seq_add(&mut self, seq: i32, p0: u32, p1: u32, delta: i32) {
        let pos = |p: u32| i32::try_from(p).unwrap_or(i32::MAX);
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_add(mem, seq, pos(p0), pos(p1), delta);
        }
    }

    /// Whether the KV cache can shift positions (some architectures cannot).
    pub fn can_shift(&self) -> bool {
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe { sys::llama_memory_can_shift(sys::llama_get_memory(self.ctx.as_ptr())) }
    }

    /// The smallest position of a sequence in the KV cache (-1 if it is empty).
    pub fn seq_pos_min(&self, seq: i32) -> i32 {
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_pos_min(mem, seq)
        }
    }

    /// The largest position of a sequence in the KV cache (-1 if it is empty).
    pub fn seq_pos_max(&self, seq: i32) -> i32 {
        // SAFETY: `ctx` is live; its memory handle lives as long as it.
        unsafe {
            let mem = sys::llama_get_memory(self.ctx.as_ptr());
            sys::llama_memory_seq_pos_max(mem, seq)
        }
    }
}
