//! A lost RPC worker: an error for the requests in flight and a server that stays up to say so.
//!
//! When an RPC worker's connection fails (the worker died, the network went), llama.cpp's RPC
//! client cannot go on: its dispatcher thread calls `GGML_ABORT("Remote RPC server crashed or
//! returned malformed response")` (`RPC_STATUS_ASSERT`, ggml-rpc.cpp), which prints and calls
//! `abort()`, ending llama-server and every request with it. ggml lets the program replace the
//! printing (`ggml_set_abort_callback`) but `abort()` follows when the callback returns, and no
//! llama.cpp state can be unwound from there. So for an abort raised in ggml-rpc the callback
//! never returns: it logs one clear line, answers every request in flight with an error, marks
//! the engine lost (the HTTP edge then answers 503 with the reason, `/health` included) and
//! parks the aborting thread for good. The engine thread stays blocked inside `llama_decode`
//! (it waits for that thread), so the model serves nothing more: restart the server once the
//! worker is back. Any other abort keeps ggml's behaviour (the message, then `abort()`).

use std::ffi::{CStr, c_char};
use std::sync::{Mutex, OnceLock};

use tokio::sync::mpsc::{UnboundedSender, WeakUnboundedSender};

use super::{EngineError, Event};

static LOST: OnceLock<String> = OnceLock::new();
/// The event channels of the requests queued or running; weak, so that a request's stream
/// still ends when the engine drops its sender.
static IN_FLIGHT: Mutex<Vec<WeakUnboundedSender<Event>>> = Mutex::new(Vec::new());

/// Replaces ggml's abort printing with `on_abort`. Call before the model loads.
pub fn install() {
    // SAFETY: `on_abort` is a plain function that lives for the whole program; ggml stores the
    // pointer and calls it with a NUL-terminated message.
    unsafe {
        llama_cpp_sys_2::ggml_set_abort_callback(Some(on_abort));
    }
}

/// Why the engine can serve nothing more, once an RPC worker is lost.
pub fn lost() -> Option<&'static str> {
    LOST.get().map(String::as_str)
}

/// Remembers a request's event channel, to fail it if a worker is lost.
pub(super) fn track(tx: &UnboundedSender<Event>) {
    let mut in_flight = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
    in_flight.retain(|w| w.strong_count() > 0);
    in_flight.push(tx.downgrade());
}

/// The error a request gets when a worker is lost (llama.cpp's message in it).
fn lost_error(message: &str) -> String {
    format!(
        "an RPC worker was lost ({message}); the model's layers on it are gone: restart the \
         server once the worker is back"
    )
}

unsafe extern "C" fn on_abort(message: *const c_char) {
    let message = if message.is_null() {
        String::from("(no message)")
    } else {
        // SAFETY: ggml passes a NUL-terminated buffer valid for the call.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    };
    if !message.contains("ggml-rpc") {
        eprintln!("{message}");
        return;
    }
    let reason = message
        .rsplit_once(": ")
        .map_or(message.as_str(), |(_, r)| r)
        .trim()
        .to_owned();
    let error = lost_error(&reason);
    tracing::error!("{error} [{message}]");
    let _ = LOST.set(error.clone());
    let senders: Vec<_> = std::mem::take(&mut *IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner()));
    for tx in senders.iter().filter_map(WeakUnboundedSender::upgrade) {
        let _ = tx.send(Event::Error(EngineError::DeviceLost(error.clone())));
    }
    // Returning would abort the process; the thread has nothing else to do.
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_error_names_llama_cpp_s_reason() {
        let e = super::lost_error("Remote RPC server crashed or returned malformed response");
        assert!(
            e.starts_with("an RPC worker was lost (Remote RPC server crashed"),
            "{e}"
        );
    }
}
