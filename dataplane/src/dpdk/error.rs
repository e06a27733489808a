//! DPDK error codes as a value: the errno and its `rte_strerror` text.
//!
//! DPDK reports failure either as a negative return code (`-EINVAL`, most of
//! ethdev) or as `-1`/`NULL` with `rte_errno` set (EAL, mempool, ring).
//! [`DpdkErrno`] captures both forms at the call site, together with
//! DPDK's own description, so the typed errors of the other modules can
//! carry it without calling back into DPDK when they are displayed.

use std::ffi::CStr;

use dpdk_sys as sys;

/// An errno value from DPDK with its `rte_strerror` text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text} (errno {code})")]
pub struct DpdkErrno {
    /// The positive errno value (`EINVAL`, `ENOMEM`, DPDK's `E_RTE_*`, ...).
    pub code: i32,
    /// `rte_strerror(code)`, copied at the time of the failure.
    pub text: String,
}

impl DpdkErrno {
    /// Wraps a positive errno value.
    #[cold]
    pub(crate) fn new(code: i32) -> Self {
        // SAFETY: rte_strerror accepts any int and returns a pointer to a
        // NUL-terminated string that is static or in a per-thread buffer;
        // it is copied out before anything else can overwrite it.
        let text = unsafe {
            let ptr = sys::rte_strerror(code);
            if ptr.is_null() {
                String::new()
            } else {
                CStr::from_ptr(ptr).to_string_lossy().into_owned()
            }
        };
        Self { code, text }
    }

    /// Wraps a negative-errno return code (`ret == -EINVAL`).
    #[cold]
    pub(crate) fn from_ret(ret: i32) -> Self {
        Self::new(ret.saturating_neg())
    }

    /// Reads `rte_errno` of the calling thread.
    #[cold]
    pub(crate) fn last() -> Self {
        // SAFETY: the shim reads this thread's `rte_errno` TLS variable.
        Self::new(unsafe { sys::rvs_rte_errno() })
    }
}
