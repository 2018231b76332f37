//! Compute devices and their memory: every GPU llama.cpp's backends see, host RAM, CPU threads.

/// Threads for math, as llama.cpp's `common_cpu_get_num_math` counts them (llama-server's
/// default `-t`): physical cores, hyperthreads excluded.
pub fn math_threads() -> i32 {
    let cores = sysinfo::System::physical_core_count()
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()));
    cores.map_or(4, |n| n.max(1) as i32)
}
