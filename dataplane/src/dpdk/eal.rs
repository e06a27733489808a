//! EAL start-up and lcore launching: owns the process-wide EAL state.
//!
//! `rte_eal_init` may succeed once per process, so [`Eal`] is a singleton
//! guarded by an atomic state machine (`UNINIT -> STARTING -> READY`, back
//! to `UNINIT` if DPDK rejects the arguments). Other modules ask
//! [`eal_ready`] before touching EAL memory.
//!
//! The thread that calls [`Eal::init`] becomes the main lcore (EAL pins it).
//! `rte_eal_remote_launch`/`rte_eal_wait_lcore` must run on the main lcore,
//! so [`Eal`] is `!Send + !Sync`: only that thread can hold it, and the
//! closures it launches (which must be `Send + 'static`) cannot capture it.
//!
//! **Clean-up.** Dropping [`Eal`] does *not* call `rte_eal_cleanup`.
//! Mempools, mbufs, ports and rings are plain values that may outlive the
//! `Eal` value; after `rte_eal_cleanup` their memory is gone, and dropping
//! any of them would be a use-after-free. EAL cannot be initialised again in
//! the same process anyway, so its memory is released by process exit.
//!
//! **Panics in launched closures.** The trampoline is `extern "C"`; a panic
//! that reaches it aborts the process. That is deliberate: a worker lcore
//! that died half-way must take the process down, not leave it limping.

use std::ffi::{c_char, c_int, c_void, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};

use dpdk_sys as sys;

use super::error::DpdkErrno;
use super::lcore::LcoreId;

const UNINIT: u8 = 0;
const STARTING: u8 = 1;
const READY: u8 = 2;

static EAL_STATE: AtomicU8 = AtomicU8::new(UNINIT);

/// `EALREADY` on Linux: what `rte_eal_init` sets when it already ran.
const EALREADY: i32 = 114;

/// True once `rte_eal_init` has succeeded in this process.
pub(crate) fn eal_ready() -> bool {
    EAL_STATE.load(Ordering::Acquire) == READY
}

/// Why [`Eal::init`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EalError {
    /// EAL was already initialised (or is being initialised) in this process.
    #[error("eal is already initialised in this process")]
    AlreadyInitialised,
    /// An argument contains a NUL byte and cannot be passed to C.
    #[error("eal argument {index} contains a nul byte")]
    NulInArgument {
        /// Position of the offending argument in `args`.
        index: usize,
    },
    /// `args` was empty (argv\[0\] must be a program name) or too long.
    #[error("eal needs between 1 and {max} arguments, got {count}", max = i32::MAX)]
    BadArgumentCount {
        /// Number of arguments given.
        count: usize,
    },
    /// `rte_eal_init` failed (bad arguments, no memory, a device failed to
    /// probe, ...).
    #[error("rte_eal_init failed: {errno}")]
    Init {
        /// `rte_errno` after the call.
        errno: DpdkErrno,
    },
}

/// Why [`Eal::launch`] or [`Eal::wait`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    /// The lcore is not an enabled worker lcore (it is the main lcore, is
    /// disabled, or is out of range).
    #[error("{lcore} is not an enabled worker lcore")]
    NotAWorker {
        /// The lcore asked for.
        lcore: LcoreId,
    },
    /// `rte_eal_remote_launch` refused, normally because the lcore is still
    /// running a previous job (`EBUSY`).
    #[error("cannot launch on {lcore}: {errno}")]
    Launch {
        /// The lcore asked for.
        lcore: LcoreId,
        /// Return code of `rte_eal_remote_launch`.
        errno: DpdkErrno,
    },
}

/// A job for a worker lcore.
type LaunchFn = Box<dyn FnOnce() -> i32 + Send + 'static>;

/// The initialised Environment Abstraction Layer. At most one per process.
///
/// `!Send + !Sync`: it stays on the main lcore (the thread that created it).
#[derive(Debug)]
pub struct Eal {
    tsc_hz: u64,
    main_lcore: LcoreId,
    _main_thread_only: PhantomData<*const ()>,
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (`args[0]` is a program name, the
    /// rest are EAL options such as `-l 0-1 --no-huge --vdev=net_ring0`).
    /// The calling thread becomes the main lcore.
    ///
    /// The argument strings are leaked on purpose: EAL may keep pointers
    /// into `argv` for the life of the process.
    ///
    /// # Errors
    ///
    /// [`EalError::AlreadyInitialised`] on a second call,
    /// [`EalError::NulInArgument`]/[`EalError::BadArgumentCount`] for
    /// arguments that cannot be passed to C, [`EalError::Init`] when DPDK
    /// fails (its `rte_errno` and message are included).
    #[cold]
    pub fn init(args: &[String]) -> Result<Self, EalError> {
        if EAL_STATE
            .compare_exchange(UNINIT, STARTING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(EalError::AlreadyInitialised);
        }
        match Self::init_once(args) {
            Ok(eal) => {
                EAL_STATE.store(READY, Ordering::Release);
                Ok(eal)
            }
            Err(e) => {
                // DPDK keeps its own run-once guard; if a retry is not
                // possible it will answer EALREADY, mapped below.
                EAL_STATE.store(UNINIT, Ordering::Release);
                Err(e)
            }
        }
    }

    #[cold]
    fn init_once(args: &[String]) -> Result<Self, EalError> {
        let argc = i32::try_from(args.len())
            .ok()
            .filter(|&n| n > 0)
            .ok_or(EalError::BadArgumentCount { count: args.len() })?;
        let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
        for (index, arg) in args.iter().enumerate() {
            let c = CString::new(arg.as_str()).map_err(|_| EalError::NulInArgument { index })?;
            argv.push(c.into_raw());
        }
        argv.push(std::ptr::null_mut());
        // Leaked on purpose (see above): EAL may permute argv and keep
        // pointers to its strings.
        let argv: &'static mut [*mut c_char] = Box::leak(argv.into_boxed_slice());

        // SAFETY: argv holds `argc` valid NUL-terminated strings followed by
        // a NULL, all leaked so they outlive EAL; EAL_STATE guarantees no
        // other thread is inside rte_eal_init.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let errno = DpdkErrno::last();
            if errno.code == EALREADY {
                return Err(EalError::AlreadyInitialised);
            }
            return Err(EalError::Init { errno });
        }
        // SAFETY: EAL is initialised; both calls only read its config.
        let (tsc_hz, main) = unsafe { (sys::rte_get_tsc_hz(), sys::rte_get_main_lcore()) };
        Ok(Self {
            tsc_hz,
            main_lcore: LcoreId(main),
            _main_thread_only: PhantomData,
        })
    }

    /// TSC ticks per second, to convert [`rdtsc`](super::rdtsc) readings.
    #[must_use]
    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    /// The main lcore (the thread that called [`Eal::init`]).
    #[must_use]
    pub fn main_lcore(&self) -> LcoreId {
        self.main_lcore
    }

    /// Enabled lcores other than the main one, in increasing order.
    #[must_use]
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        // SAFETY: EAL is initialised; rte_get_next_lcore only reads its
        // config and returns >= RTE_MAX_LCORE when there are no more.
        let mut i = unsafe { sys::rte_get_next_lcore(u32::MAX, 1, 0) };
        while i < sys::RTE_MAX_LCORE {
            out.push(LcoreId(i));
            // SAFETY: as above.
            i = unsafe { sys::rte_get_next_lcore(i, 1, 0) };
        }
        out
    }

    fn check_worker(&self, lcore: LcoreId) -> Result<(), LaunchError> {
        let enabled = lcore.0 < sys::RTE_MAX_LCORE
            // SAFETY: index checked just above; reads EAL's lcore table.
            && unsafe { sys::rte_lcore_is_enabled(lcore.0) } != 0;
        if enabled && lcore != self.main_lcore {
            Ok(())
        } else {
            Err(LaunchError::NotAWorker { lcore })
        }
    }

    /// Runs `f` on worker `lcore` (`rte_eal_remote_launch`). Its return
    /// value is collected by [`Eal::wait`]. A panic inside `f` aborts the
    /// process.
    ///
    /// # Errors
    ///
    /// [`LaunchError::NotAWorker`] if `lcore` is the main lcore or not
    /// enabled; [`LaunchError::Launch`] if it is still busy with a previous
    /// job (wait for it first). `f` is dropped unrun on error.
    #[cold]
    pub fn launch(
        &self,
        lcore: LcoreId,
        f: Box<dyn FnOnce() -> i32 + Send + 'static>,
    ) -> Result<(), LaunchError> {
        self.check_worker(lcore)?;
        let arg: *mut LaunchFn = Box::into_raw(Box::new(f));
        // SAFETY: we are on the main lcore (Eal is !Send) and `lcore` is an
        // enabled worker. On success DPDK passes `arg` to the trampoline
        // exactly once, which takes ownership of the box.
        let ret = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg.cast(), lcore.0) };
        if ret != 0 {
            // SAFETY: the launch failed, so DPDK did not and will not use
            // `arg`; we still own the box from Box::into_raw above.
            drop(unsafe { Box::from_raw(arg) });
            return Err(LaunchError::Launch {
                lcore,
                errno: DpdkErrno::from_ret(ret),
            });
        }
        Ok(())
    }

    /// Waits for the job on `lcore` to finish and returns its result
    /// (`rte_eal_wait_lcore`): the value of the last job run there, or 0 if
    /// nothing was ever launched on it. Also valid after [`Eal::wait_all`].
    ///
    /// # Errors
    ///
    /// [`LaunchError::NotAWorker`] if `lcore` is not an enabled worker.
    pub fn wait(&self, lcore: LcoreId) -> Result<i32, LaunchError> {
        self.check_worker(lcore)?;
        // SAFETY: main lcore, enabled worker index.
        Ok(unsafe { sys::rte_eal_wait_lcore(lcore.0) })
    }

    /// Waits until every launched worker has returned
    /// (`rte_eal_mp_wait_lcore`).
    pub fn wait_all(&self) {
        // SAFETY: called on the main lcore (Eal is !Send).
        unsafe { sys::rte_eal_mp_wait_lcore() }
    }
}

/// Entry point of a launched job: unboxes and runs the closure.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Box<LaunchFn>` leaked by `Eal::launch`, handed
    // to us exactly once by rte_eal_remote_launch.
    let f = unsafe { Box::from_raw(arg.cast::<LaunchFn>()) };
    f()
}
