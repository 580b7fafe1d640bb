//! Type-erased callback storage without a heap allocation per operation.
//!
//! Each operation stores a *handler*: the user's closure together with what the
//! operation owns (its buffer, its address). Handlers of up to
//! [`INLINE_BYTES`] bytes with alignment of at most 8 are stored inline in the
//! completion slot; larger ones are boxed once (one allocation for that
//! operation). A single function pointer, monomorphized per handler type,
//! either runs the handler with the operation's result or drops it.
#![allow(unsafe_code)]

use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, MaybeUninit};
use std::ptr;

use crate::io::IO;

/// Words of inline storage. Five words hold a `Vec<u8>` (three words) plus a
/// captured [`Handle`](crate::Handle) (12 bytes) and a `u32`, the common case
/// for a connection handler: the buffer travels in the handler, and the
/// closure captures the socket and a connection index.
const INLINE_WORDS: usize = 5;

/// Bytes of inline storage a handler may use before it is boxed (40).
///
/// A handler is the closure plus what the operation owns, so for a `recv`
/// or `send` the buffer counts too: a `Vec<u8>` takes 24 of the 40 bytes,
/// which leaves 16 for what the closure captures, say a
/// [`Handle`](crate::Handle) (12) and a `u32`. A `connect` owns a boxed
/// address (8), leaving 32. A larger handler (or one aligned above 8) is
/// boxed: one heap allocation for that operation, counted in
/// [`Stats::callbacks_boxed`](crate::Stats::callbacks_boxed), which a
/// steady state that must not allocate can assert is zero.
pub const INLINE_BYTES: usize = INLINE_WORDS * mem::size_of::<usize>();

/// What a completed operation does with its raw result: convert it to the
/// typed result, hand back what it owns, and call the user's closure.
pub(crate) trait Handler<C>: 'static {
    /// Consumes the handler. `result` is the kernel convention: `>= 0` on
    /// success, `-errno` on failure.
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32);
}

/// A boxed handler is a handler: this is how large closures are stored.
impl<C, H: Handler<C>> Handler<C> for Box<H> {
    fn complete(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        (*self).complete(io, ctx, result)
    }
}

/// Either the arguments to run the handler with, or `None` to drop it.
type Invoke<'a, C> = Option<(&'a mut IO<C>, &'a mut C, i32)>;

/// An erased, owned handler, or nothing.
pub(crate) struct Callback<C> {
    storage: MaybeUninit<[usize; INLINE_WORDS]>,
    /// `Some` exactly when `storage` holds a live handler of the type this
    /// function was instantiated for.
    invoke: Option<unsafe fn(*mut u8, Invoke<'_, C>)>,
    /// The erased handler may capture anything (an `Rc`, say), so a
    /// `Callback` is neither `Send` nor `Sync`, whatever the storage's own
    /// types would let the compiler infer.
    _not_send: PhantomData<*mut ()>,
}

impl<C> Callback<C> {
    /// An empty callback (a free slot holds one).
    pub(crate) const fn empty() -> Callback<C> {
        Callback {
            storage: MaybeUninit::uninit(),
            invoke: None,
            _not_send: PhantomData,
        }
    }

    /// Stores `handler`, inline when it fits, else boxed.
    pub(crate) fn new<H: Handler<C>>(handler: H) -> Callback<C> {
        if fits_inline::<H>() {
            Callback::inline(handler)
        } else {
            Callback::inline(Box::new(handler))
        }
    }

    fn inline<H: Handler<C>>(handler: H) -> Callback<C> {
        assert!(fits_inline::<H>());
        let mut callback = Callback::empty();
        let target = callback.storage.as_mut_ptr().cast::<H>();
        // SAFETY: `target` is valid for writes of H: the storage is at least
        // size_of::<H>() bytes and at least align_of::<H>()-aligned (asserted above).
        unsafe { ptr::write(target, handler) };
        callback.invoke = Some(invoke::<C, H>);
        callback
    }

    /// Whether a handler is stored.
    pub(crate) fn is_some(&self) -> bool {
        self.invoke.is_some()
    }

    /// Runs the handler, consuming it. Does nothing when empty.
    pub(crate) fn call(mut self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        if let Some(invoke) = self.invoke.take() {
            // SAFETY: `invoke` was set together with a live handler of its type
            // in `storage`; taking it out first means it is read exactly once.
            unsafe { invoke(self.storage.as_mut_ptr().cast(), Some((io, ctx, result))) };
        }
    }

    /// Forgets the handler without dropping it: whatever it owns (a buffer the
    /// kernel may still write into) is leaked, never freed.
    pub(crate) fn leak(mut self) {
        self.invoke = None;
    }
}

impl<C> Drop for Callback<C> {
    fn drop(&mut self) {
        if let Some(invoke) = self.invoke.take() {
            // SAFETY: as in `call`; `None` asks for the handler to be dropped.
            unsafe { invoke(self.storage.as_mut_ptr().cast(), None) };
        }
    }
}

impl<C> fmt::Debug for Callback<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("is_some", &self.is_some())
            .finish()
    }
}

/// Whether a handler of type `H` is stored inline (else it is boxed, one
/// allocation, counted in `Stats::callbacks_boxed`).
pub(crate) const fn fits_inline<H>() -> bool {
    mem::size_of::<H>() <= INLINE_BYTES && mem::align_of::<H>() <= mem::align_of::<usize>()
}

/// Moves the handler of type `H` out of `storage`, then runs or drops it.
///
/// # Safety
///
/// `storage` must hold a live `H` written by `Callback::inline`, and this must
/// be the only read of it.
unsafe fn invoke<C, H: Handler<C>>(storage: *mut u8, invoke: Invoke<'_, C>) {
    // SAFETY: guaranteed by the caller: a live, properly aligned H, read once.
    let handler = unsafe { ptr::read(storage.cast::<H>()) };
    match invoke {
        Some((io, ctx, result)) => handler.complete(io, ctx, result),
        None => drop(handler),
    }
}
