//! How fast llama.cpp's CPU backend multiplies a matrix of each ggml type by a vector (the
//! operation decode spends its time in), with the decode thread count: on few cores a small
//! model is bound by these kernels, not by memory bandwidth, and their speed differs several
//! times between types (K-quants unpack more per weight than Q8_0).
//!
//! Each type is measured once per process on a matrix that stays in the CPU's caches, placed
//! where llama.cpp places such a weight (the first of the CPU's extra buffer types, AMX or
//! CPU_REPACK, that takes it for a matrix product, as `make_cpu_buft_list` and
//! `weight_buft_supported` choose), through ggml's public backend API: the same kernels, thread
//! pool and repacking as serving. About 10 ms per type.
//!
//! One of the modules with raw llama.cpp calls (ARCHITECTURE.md); each block says why it is
//! sound.

use crate::plan::TypeRate;
use llama_cpp_sys_2 as sys;
use std::ffi::{c_int, c_void};
use std::time::Instant;

/// Columns of the measured matrix (a typical small model's embedding width, a multiple of every
/// block size).
const NE0: i64 = 2048;
/// Bytes of the measured matrix: inside two cores' L2 caches on most CPUs.
const MATRIX_BYTES: usize = 2 << 20;
/// Rounds over all types, and products of one type in a row in each round.
const ROUNDS: usize = 5;
const BURST: usize = 4;

/// The compute-bound matrix-vector rate of each ggml type in `types`, weight bytes per
/// second with `threads` threads; types the CPU backend cannot multiply are left out. The
/// products of all types take turns, so that a moment when other processes hold the cores
/// spoils one round of every type, not every round of one.
pub fn measure(types: &[u32], threads: usize) -> Vec<TypeRate> {
    let Some(cpu) = Cpu::new(threads) else {
        return Vec::new();
    };
    let mut types = types.to_vec();
    types.sort_unstable();
    types.dedup();
    let mut products: Vec<(u32, MatVec)> = types
        .into_iter()
        .filter_map(|ty| Some((ty, MatVec::new(&cpu, ty)?)))
        .collect();
    let mut best = vec![f64::MAX; products.len()];
    for _ in 0..ROUNDS {
        for (i, (_, p)) in products.iter_mut().enumerate() {
            // The first product of a burst brings the matrix back into the caches.
            for _ in 0..=BURST {
                if let Some(t) = p.run(&cpu) {
                    best[i] = best[i].min(t);
                }
            }
        }
    }
    products
        .iter()
        .zip(best)
        .filter(|(_, t)| *t < f64::MAX)
        .map(|((ty, p), t)| TypeRate {
            ggml_type: *ty,
            bytes_per_second: p.bytes / t,
        })
        .collect()
}

/// The CPU device, a backend on it with `threads` threads, and its buffer types in llama.cpp's
/// order of preference.
struct Cpu {
    dev: sys::ggml_backend_dev_t,
    backend: sys::ggml_backend_t,
    bufts: Vec<sys::ggml_backend_buffer_type_t>,
}

impl Cpu {
    fn new(threads: usize) -> Option<Cpu> {
        // SAFETY: the registry calls only read ggml's global device list; the proc addresses
        // are cast to the types ggml-backend.h declares for those names
        // (`ggml_backend_set_n_threads_t`, `ggml_backend_dev_get_extra_bufts_t`); the extra
        // buffer type list is null-terminated and static.
        unsafe {
            let dev = sys::ggml_backend_dev_by_type(sys::GGML_BACKEND_DEVICE_TYPE_CPU);
            if dev.is_null() {
                return None;
            }
            let backend = sys::ggml_backend_dev_init(dev, std::ptr::null());
            if backend.is_null() {
                return None;
            }
            let reg = sys::ggml_backend_dev_backend_reg(dev);
            let set_threads =
                sys::ggml_backend_reg_get_proc_address(reg, c"ggml_backend_set_n_threads".as_ptr());
            if !set_threads.is_null() {
                let f: unsafe extern "C" fn(sys::ggml_backend_t, c_int) =
                    std::mem::transmute(set_threads);
                f(backend, threads.max(1) as c_int);
            }
            let mut bufts = Vec::new();
            let extra = sys::ggml_backend_reg_get_proc_address(
                reg,
                c"ggml_backend_dev_get_extra_bufts".as_ptr(),
            );
            if !extra.is_null() {
                let f: unsafe extern "C" fn(
                    sys::ggml_backend_dev_t,
                )
                    -> *mut sys::ggml_backend_buffer_type_t = std::mem::transmute(extra);
                let mut p = f(dev);
                while !p.is_null() && !(*p).is_null() {
                    bufts.push(*p);
                    p = p.add(1);
                }
            }
            bufts.push(sys::ggml_backend_dev_buffer_type(dev));
            Some(Cpu {
                dev,
                backend,
                bufts,
            })
        }
    }
}

/// One weight matrix of a type, placed as llama.cpp would place it, and the graph of its
/// product with a vector.
struct MatVec {
    ctx: *mut sys::ggml_context,
    graph: *mut sys::ggml_cgraph,
    buffers: Vec<sys::ggml_backend_buffer_t>,
    /// Weight bytes per product.
    bytes: f64,
}

impl MatVec {
    /// The product for type `ty`, warmed up once; `None` if the CPU backend cannot run it.
    fn new(cpu: &Cpu, ty: u32) -> Option<MatVec> {
        // SAFETY: every tensor lives in `ctx`, created here with room for their headers and the
        // graph; tensor data is allocated in buffers owned by the returned value (or freed on
        // failure by its drop), which frees them before the context; `ggml_backend_tensor_set`
        // copies `data`, whose length is the tensor's byte size.
        unsafe {
            let blck = sys::ggml_blck_size(ty);
            if blck <= 0 || NE0 % blck != 0 {
                return None;
            }
            let row = sys::ggml_row_size(ty, NE0);
            let ne1 = ((MATRIX_BYTES / row.max(1)) as i64 / 64).max(1) * 64;
            let params = sys::ggml_init_params {
                mem_size: sys::ggml_tensor_overhead() * 8 + sys::ggml_graph_overhead(),
                mem_buffer: std::ptr::null_mut(),
                no_alloc: true,
            };
            let ctx = sys::ggml_init(params);
            if ctx.is_null() {
                return None;
            }
            let mut m = MatVec {
                ctx,
                graph: sys::ggml_new_graph(ctx),
                buffers: Vec::new(),
                bytes: (row * ne1 as usize) as f64,
            };
            let w = sys::ggml_new_tensor_2d(ctx, ty, NE0, ne1);
            let x = sys::ggml_new_tensor_2d(ctx, sys::GGML_TYPE_F32, NE0, 1);
            let y = sys::ggml_mul_mat(ctx, w, x);
            // llama.cpp chooses a weight's buffer type with a 512-column product.
            let probe_b = sys::ggml_new_tensor_2d(ctx, sys::GGML_TYPE_F32, NE0, 512);
            let probe = sys::ggml_mul_mat(ctx, w, probe_b);
            sys::ggml_build_forward_expand(m.graph, y);

            let host = *cpu.bufts.last().expect("the CPU buffer type");
            if !(m.alloc(x, host) && m.alloc(y, host) && m.alloc(probe_b, host)) {
                return None;
            }
            let mut placed = false;
            for &buft in &cpu.bufts {
                // A zero-size buffer of this type marks the weight's place for the check.
                let marker = sys::ggml_backend_buft_alloc_buffer(buft, 0);
                (*w).buffer = marker;
                let supported = sys::ggml_backend_dev_supports_op(cpu.dev, probe);
                (*w).buffer = std::ptr::null_mut();
                if !marker.is_null() {
                    sys::ggml_backend_buffer_free(marker);
                }
                if supported || buft == host {
                    placed = m.alloc(w, buft);
                    break;
                }
            }
            if !placed || !sys::ggml_backend_dev_supports_op(cpu.dev, y) {
                return None;
            }
            // Weights of 0x11 bytes: every f16/f32 scale in them is a small normal number.
            let data = vec![0x11u8; sys::ggml_nbytes(w)];
            sys::ggml_backend_tensor_set(w, data.as_ptr() as *const c_void, 0, data.len());
            let ones = vec![1.0f32; NE0 as usize];
            sys::ggml_backend_tensor_set(x, ones.as_ptr() as *const c_void, 0, ones.len() * 4);
            m.run(cpu)?;
            Some(m)
        }
    }

    /// Allocates `t` in a buffer of its own of type `buft`.
    ///
    /// # Safety
    /// `t` is an unallocated tensor of `self.ctx`.
    unsafe fn alloc(
        &mut self,
        t: *mut sys::ggml_tensor,
        buft: sys::ggml_backend_buffer_type_t,
    ) -> bool {
        // SAFETY: the caller passes a tensor of this context; the buffer is sized for it by its
        // type and kept until drop.
        unsafe {
            let size = sys::ggml_backend_buft_get_alloc_size(buft, t);
            let buffer = sys::ggml_backend_buft_alloc_buffer(buft, size);
            if buffer.is_null() {
                return false;
            }
            self.buffers.push(buffer);
            sys::ggml_backend_tensor_alloc(buffer, t, sys::ggml_backend_buffer_get_base(buffer))
                == sys::GGML_STATUS_SUCCESS
        }
    }

    /// Seconds of one product, or `None` if the backend fails it.
    fn run(&mut self, cpu: &Cpu) -> Option<f64> {
        let start = Instant::now();
        // SAFETY: the graph's tensors are all allocated (`new` checked it) and live as long as
        // `self`.
        let status = unsafe { sys::ggml_backend_graph_compute(cpu.backend, self.graph) };
        (status == sys::GGML_STATUS_SUCCESS).then(|| start.elapsed().as_secs_f64())
    }
}

impl Drop for MatVec {
    fn drop(&mut self) {
        // SAFETY: the buffers and the context were created by `new` and are freed once, the
        // buffers (which hold the context's tensors' data) first.
        unsafe {
            for &b in &self.buffers {
                sys::ggml_backend_buffer_free(b);
            }
            sys::ggml_free(self.ctx);
        }
    }
}

/// Operations in the synchronisation measurement.
const SYNC_NODES: usize = 256;

/// Seconds one small graph operation costs with `threads` threads, beyond its arithmetic:
/// the threads meet at a barrier after every operation, which takes longest when other
/// processes hold the cores. The median of a few runs of a chain of tiny additions.
pub fn measure_node_cost(threads: usize) -> Option<f64> {
    let cpu = Cpu::new(threads)?;
    // SAFETY: the tensors live in `ctx`, sized for their headers and the graph; their data in
    // one buffer allocated for the context and freed before it; nothing escapes this block.
    unsafe {
        let params = sys::ggml_init_params {
            mem_size: sys::ggml_tensor_overhead() * (SYNC_NODES + 2) + sys::ggml_graph_overhead(),
            mem_buffer: std::ptr::null_mut(),
            no_alloc: true,
        };
        let ctx = sys::ggml_init(params);
        if ctx.is_null() {
            return None;
        }
        let a = sys::ggml_new_tensor_1d(ctx, sys::GGML_TYPE_F32, 640);
        let mut cur = a;
        for _ in 0..SYNC_NODES {
            cur = sys::ggml_add(ctx, cur, a);
        }
        let graph = sys::ggml_new_graph(ctx);
        sys::ggml_build_forward_expand(graph, cur);
        let buffer = sys::ggml_backend_alloc_ctx_tensors(ctx, cpu.backend);
        let mut times = Vec::new();
        if !buffer.is_null() {
            let zeros = vec![0f32; 640];
            sys::ggml_backend_tensor_set(a, zeros.as_ptr() as *const c_void, 0, 640 * 4);
            for _ in 0..7 {
                let start = Instant::now();
                if sys::ggml_backend_graph_compute(cpu.backend, graph) != sys::GGML_STATUS_SUCCESS {
                    break;
                }
                times.push(start.elapsed().as_secs_f64());
            }
            sys::ggml_backend_buffer_free(buffer);
        }
        sys::ggml_free(ctx);
        times.sort_by(f64::total_cmp);
        times.get(times.len() / 2).map(|t| t / SYNC_NODES as f64)
    }
}

impl Drop for Cpu {
    fn drop(&mut self) {
        // SAFETY: the backend was created by `ggml_backend_dev_init` and is freed once.
        unsafe { sys::ggml_backend_free(self.backend) }
    }
}
