//! llama.cpp's RPC backend (ggml-rpc): other machines' devices as devices of this one.
//!
//! `--rpc host:port,…` adds each worker's devices to ggml's device list before anything plans
//! or loads, as llama-server's `add_rpc_devices` does, so `devices`, `plan` and the model load
//! see them like local GPUs (llama.cpp puts RPC devices first, to keep network transfers few).
//! `gguf-serve rpc-worker` runs llama.cpp's own server side (`ggml_backend_rpc_start_server`), so
//! either end interoperates with llama.cpp's `rpc-server` and `llama-server --rpc`. The transport
//! is llama.cpp's; this module only finds its functions through the backend registry (as
//! llama.cpp's tools do, which works whether the backend is linked in or loaded at run time) and
//! checks what llama.cpp would abort on (an endpoint it cannot parse or reach) first.

use std::ffi::{CString, c_char};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use llama_cpp_sys_2 as sys;

/// llama.cpp's `rpc-server` defaults.
pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 50052;

/// How long `--rpc` waits for each worker to accept a connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("--rpc: no RPC servers specified")]
    Empty,
    #[error("--rpc {0}: not host:port (llama.cpp's RPC endpoints are IPv4 addresses or names)")]
    Endpoint(String),
    #[error(
        "--rpc {endpoint}: cannot connect ({reason}); is `gguf-serve rpc-worker` or llama.cpp's \
         `rpc-server` running there, and reachable?"
    )]
    Unreachable { endpoint: String, reason: String },
    #[error(
        "this build of llama.cpp has no RPC backend (built without GGML_RPC=ON; rebuild \
         llama-cpp-sys-2 with .cargo/config.toml's [env])"
    )]
    NoBackend,
    #[error("llama.cpp's RPC backend has no {0} function")]
    NoFunction(&'static str),
    #[error("--device {0}: no such device (see gguf-serve devices)")]
    Device(String),
    #[error("no device to serve: llama.cpp sees none")]
    NoDevices,
    #[error("llama.cpp's RPC server on {0} stopped (see the lines above: a port in use?)")]
    Stopped(String),
}

/// Splits `--rpc`'s comma-separated list, checking each is `host:port` as llama.cpp's
/// `parse_endpoint` reads it (the host before the first colon, a port after it).
pub fn parse_servers(list: &str) -> Result<Vec<String>, RpcError> {
    let servers: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if servers.is_empty() {
        return Err(RpcError::Empty);
    }
    for server in &servers {
        let (host, port) = server
            .split_once(':')
            .ok_or_else(|| RpcError::Endpoint(server.clone()))?;
        if host.is_empty() || !port.parse::<u16>().is_ok_and(|p| p != 0) {
            return Err(RpcError::Endpoint(server.clone()));
        }
    }
    Ok(servers)
}

/// Adds every worker's devices to ggml's device list (`ggml_backend_rpc_add_server` and
/// `ggml_backend_register`, as llama-server's `--rpc`). Each worker is first reached with a
/// plain TCP connection, since llama.cpp aborts the process on a worker it cannot connect to.
pub fn add_servers(servers: &[String]) -> Result<(), RpcError> {
    for server in servers {
        check_reachable(server)?;
    }
    let add = proc_address(
        c"ggml_backend_rpc_add_server",
        "ggml_backend_rpc_add_server",
    )?;
    // SAFETY: the registry returns the RPC backend's `ggml_backend_rpc_add_server`, whose C
    // signature is `ggml_backend_reg_t (const char * endpoint)`.
    let add: unsafe extern "C" fn(*const c_char) -> sys::ggml_backend_reg_t =
        unsafe { std::mem::transmute(add) };
    for server in servers {
        let endpoint =
            CString::new(server.as_str()).map_err(|_| RpcError::Endpoint(server.clone()))?;
        // SAFETY: `endpoint` is a NUL-terminated string alive for the call; llama.cpp copies it.
        // The returned registry lives for the program; ggml keeps the pointer it registers.
        unsafe {
            let reg = add(endpoint.as_ptr());
            if reg.is_null() {
                return Err(RpcError::Unreachable {
                    endpoint: server.clone(),
                    reason: "llama.cpp's handshake failed".into(),
                });
            }
            sys::ggml_backend_register(reg);
        }
    }
    Ok(())
}

/// Runs llama.cpp's RPC server on `endpoint` (`host:port`) until the process ends (it returns
/// only when the server could not start), exposing
/// `devices` by name, or, when none are named, every GPU (the CPU when there is none), as
/// llama.cpp's `rpc-server` chooses. `cache_dir`: where the worker keeps tensors it received, so
/// a client that loads the same model again sends their hashes instead of their bytes.
/// `n_threads`: threads of the CPU device.
pub fn serve_worker(
    endpoint: &str,
    cache_dir: Option<&Path>,
    n_threads: usize,
    devices: &[String],
) -> Result<(), RpcError> {
    let mut devs = worker_devices(devices)?;
    let start = proc_address(
        c"ggml_backend_rpc_start_server",
        "ggml_backend_rpc_start_server",
    )?;
    // SAFETY: the registry returns `ggml_backend_rpc_start_server`, whose C signature is
    // `void (const char *, const char *, size_t, size_t, ggml_backend_dev_t *)`.
    let start: unsafe extern "C" fn(
        *const c_char,
        *const c_char,
        usize,
        usize,
        *mut sys::ggml_backend_dev_t,
    ) = unsafe { std::mem::transmute(start) };
    let endpoint = CString::new(endpoint).map_err(|_| RpcError::Endpoint(endpoint.into()))?;
    let cache = cache_dir
        .map(|d| CString::new(d.to_string_lossy().into_owned()))
        .transpose()
        .map_err(|_| RpcError::Endpoint(endpoint.to_string_lossy().into_owned()))?;
    // SAFETY: every pointer is valid for the call, which serves until the process ends (it
    // returns only when it cannot bind or start, after printing why); the device handles are
    // owned by ggml's registry.
    unsafe {
        start(
            endpoint.as_ptr(),
            cache.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            n_threads,
            devs.len(),
            devs.as_mut_ptr(),
        );
    }
    Err(RpcError::Stopped(endpoint.to_string_lossy().into_owned()))
}

/// The devices a worker exposes: those named, else every GPU, else the CPU
/// (`rpc-server.cpp`'s `get_devices`).
fn worker_devices(names: &[String]) -> Result<Vec<sys::ggml_backend_dev_t>, RpcError> {
    let mut devices = Vec::new();
    for name in names {
        let c = CString::new(name.as_str()).map_err(|_| RpcError::Device(name.clone()))?;
        // SAFETY: `c` is a NUL-terminated string; the registry returns a device or null.
        let dev = unsafe { sys::ggml_backend_dev_by_name(c.as_ptr()) };
        if dev.is_null() {
            return Err(RpcError::Device(name.clone()));
        }
        devices.push(dev);
    }
    if devices.is_empty() {
        // SAFETY: the registry functions read ggml's global device list; handles stay valid.
        unsafe {
            for i in 0..sys::ggml_backend_dev_count() {
                let dev = sys::ggml_backend_dev_get(i);
                let kind = sys::ggml_backend_dev_type(dev);
                if kind != sys::GGML_BACKEND_DEVICE_TYPE_CPU
                    && kind != sys::GGML_BACKEND_DEVICE_TYPE_ACCEL
                {
                    devices.push(dev);
                }
            }
            if devices.is_empty() {
                let cpu = sys::ggml_backend_dev_by_type(sys::GGML_BACKEND_DEVICE_TYPE_CPU);
                if !cpu.is_null() {
                    devices.push(cpu);
                }
            }
        }
    }
    if devices.is_empty() {
        return Err(RpcError::NoDevices);
    }
    Ok(devices)
}

/// A function of the RPC backend, from its registry entry.
fn proc_address(
    name: &std::ffi::CStr,
    rust_name: &'static str,
) -> Result<*mut std::ffi::c_void, RpcError> {
    // SAFETY: both calls only read ggml's registry; `name` strings are NUL-terminated.
    unsafe {
        let reg = sys::ggml_backend_reg_by_name(c"RPC".as_ptr());
        if reg.is_null() {
            return Err(RpcError::NoBackend);
        }
        let f = sys::ggml_backend_reg_get_proc_address(reg, name.as_ptr());
        if f.is_null() {
            return Err(RpcError::NoFunction(rust_name));
        }
        Ok(f)
    }
}

/// Connects to `endpoint` and closes the connection: the worker then waits for the next one
/// (llama.cpp's server handles one client at a time and drops one that sends nothing).
fn check_reachable(endpoint: &str) -> Result<(), RpcError> {
    let unreachable = |reason: String| RpcError::Unreachable {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let addrs: Vec<SocketAddr> = endpoint
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let mut last = String::from("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(unreachable(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_llama_cpp_endpoints() {
        let cases: &[(&str, Option<&[&str]>)] = &[
            ("127.0.0.1:50052", Some(&["127.0.0.1:50052"])),
            ("a:1, b:2", Some(&["a:1", "b:2"])),
            ("", None),
            (",", None),
            ("host", None),
            (":50052", None),
            ("host:0", None),
            ("host:70000", None),
            ("host:port", None),
        ];
        for (list, expected) in cases {
            let got = parse_servers(list).ok();
            let expected = expected.map(|e| e.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(got, expected, "{list:?}");
        }
    }

    #[test]
    fn an_unreachable_worker_is_an_error_not_an_abort() {
        // A port just closed: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = add_servers(&[format!("127.0.0.1:{port}")]).unwrap_err();
        assert!(matches!(err, RpcError::Unreachable { .. }), "{err}");
    }
}
