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
use crate::multishot::Flow;

/// Words of inline storage. Five words hold a `Vec<u8>` (three words) plus a
/// captured [`Handle`](crate::Handle) (12 bytes) and a `u32`, the common case
/// for a connection handler: the buffer travels in the handler, and the
/// closure captures the socket and a connection index.
const INLINE_WORDS: usize = 6;

/// Bytes of inline storage a handler may use before it is boxed (48).
///
/// A handler is the closure plus what the operation owns, so for a `recv`
/// or `send` the buffer counts too: a `Vec<u8>` takes 24 of the 48 bytes,
/// which leaves 24 for what the closure captures, say a
/// [`Handle`](crate::Handle) (12) and a `u64`. A vectored or message
/// operation owns its `Vec` of buffers (24) and a pooled message (8),
/// leaving 16: a `Handle`. A `connect` owns a boxed address (8), leaving
/// 40. A larger handler (or one aligned above 8) is boxed: one heap
/// allocation for that operation, counted in
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

/// The handler of a multishot operation: called once per result, by
/// reference, until the final one; then dropped.
pub(crate) trait ShotHandler<C>: 'static {
    /// One result: `result` in the kernel convention, `flags` the
    /// completion entry's flags, `more` false exactly on the last call.
    fn shot(&mut self, io: &mut IO<C>, ctx: &mut C, shot: RawShot) -> Flow;
}

/// One raw result of a multishot operation, as the loop hands it over.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawShot {
    pub(crate) result: i32,
    pub(crate) flags: u32,
    pub(crate) more: bool,
}

impl<C, H: ShotHandler<C>> ShotHandler<C> for Box<H> {
    fn shot(&mut self, io: &mut IO<C>, ctx: &mut C, shot: RawShot) -> Flow {
        (**self).shot(io, ctx, shot)
    }
}

/// The erased function of a stored handler. With `call` (the loop and the
/// application's state), it runs the handler: one-shot with `result`, or,
/// given `shot`, a multishot one by reference with that result, its answer
/// written back there. Without `call`, it drops the handler. Arguments one
/// by one, not an enum, so that they travel in registers.
type InvokeFn<C> = unsafe fn(*mut u8, Option<(&mut IO<C>, &mut C)>, i32, Option<&mut ShotCall>);

/// One multishot result on its way to the handler, and the handler's answer.
pub(crate) struct ShotCall {
    shot: RawShot,
    flow: Flow,
}

/// An erased, owned handler, or nothing.
pub(crate) struct Callback<C> {
    storage: MaybeUninit<[usize; INLINE_WORDS]>,
    /// `Some` exactly when `storage` holds a live handler of the type this
    /// function was instantiated for.
    invoke: Option<InvokeFn<C>>,
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

    /// Stores a multishot `handler`, inline when it fits, else boxed.
    pub(crate) fn new_shot<H: ShotHandler<C>>(handler: H) -> Callback<C> {
        if fits_inline::<H>() {
            Callback::inline_with(handler, invoke_shot::<C, H>)
        } else {
            Callback::inline_with(Box::new(handler), invoke_shot::<C, Box<H>>)
        }
    }

    fn inline<H: Handler<C>>(handler: H) -> Callback<C> {
        Callback::inline_with(handler, invoke::<C, H>)
    }

    fn inline_with<H>(handler: H, invoke: InvokeFn<C>) -> Callback<C> {
        assert!(fits_inline::<H>());
        let mut callback = Callback::empty();
        let target = callback.storage.as_mut_ptr().cast::<H>();
        // SAFETY: `target` is valid for writes of H: the storage is at least
        // size_of::<H>() bytes and at least align_of::<H>()-aligned (asserted above).
        unsafe { ptr::write(target, handler) };
        callback.invoke = Some(invoke);
        callback
    }

    /// Stores `handler` into this (empty) callback's own storage, inline
    /// when it fits, else boxed: written in place, so that a handler's
    /// bytes are not first built on the stack and copied in (the storage
    /// of a small handler too, uninitialized bytes and all).
    #[inline(always)]
    pub(crate) fn store<H: Handler<C>>(&mut self, handler: H) {
        // Nothing to drop: the slot's callback was taken out before it was
        // freed (`Slots::release` asserts so), so this overwrites nothing live.
        debug_assert!(!self.is_some());
        if fits_inline::<H>() {
            self.store_inline(handler, invoke::<C, H>);
        } else {
            self.store_inline(Box::new(handler), invoke::<C, Box<H>>);
        }
    }

    #[inline(always)]
    fn store_inline<H>(&mut self, handler: H, invoke: InvokeFn<C>) {
        assert!(fits_inline::<H>());
        let target = self.storage.as_mut_ptr().cast::<H>();
        // SAFETY: `target` is valid for writes of H: the storage is at least
        // size_of::<H>() bytes and at least align_of::<H>()-aligned (asserted
        // above). It holds no live handler (`invoke` is `None`), so nothing
        // is overwritten that would need a drop.
        unsafe { ptr::write(target, handler) };
        self.invoke = Some(invoke);
    }

    /// Whether a handler is stored.
    pub(crate) fn is_some(&self) -> bool {
        self.invoke.is_some()
    }

    /// Runs the handler, consuming it. Does nothing when empty.
    ///
    /// By `&mut self`, not by value: the handler is moved out of `storage`
    /// once, by `invoke`, rather than the whole `Callback` being moved into
    /// this call first.
    #[inline(always)]
    pub(crate) fn call(&mut self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        if let Some(invoke) = self.invoke.take() {
            // SAFETY: `invoke` was set together with a live handler of its type
            // in `storage`; taking it out first means it is read exactly once.
            unsafe {
                invoke(
                    self.storage.as_mut_ptr().cast(),
                    Some((io, ctx)),
                    result,
                    None,
                )
            };
        }
    }

    /// Runs a multishot handler with one result, keeping it. Does nothing
    /// (and says `Continue`) when empty.
    pub(crate) fn call_shot(&mut self, io: &mut IO<C>, ctx: &mut C, shot: RawShot) -> Flow {
        let mut call = ShotCall {
            shot,
            flow: Flow::Continue,
        };
        if let Some(invoke) = self.invoke {
            let storage = self.storage.as_mut_ptr().cast();
            // SAFETY: `invoke` is set together with a live handler of its
            // type in `storage`, made by `new_shot` (the loop calls this only
            // for multishot slots). The handler is used by reference and
            // stays live; `invoke` stays set.
            unsafe { invoke(storage, Some((io, ctx)), 0, Some(&mut call)) };
        }
        call.flow
    }

    /// Forgets the handler without dropping it: whatever it owns (a buffer the
    /// kernel may still write into) is leaked, never freed.
    pub(crate) fn leak(mut self) {
        self.invoke = None;
    }
}

/// What a submission puts in its slot's callback: a [`Callback`] already
/// made (moved in), or a [`Fresh`] handler (written in place).
pub(crate) trait Store<C> {
    /// Fills `target`, an empty callback.
    fn store_into(self, target: &mut Callback<C>);
}

impl<C> Store<C> for Callback<C> {
    #[inline(always)]
    fn store_into(self, target: &mut Callback<C>) {
        debug_assert!(!target.is_some());
        // The empty callback replaced has nothing to drop.
        *target = self;
    }
}

/// A one-shot handler not stored yet: [`Store`] writes it straight into
/// the slot's storage (see [`Callback::store`]).
pub(crate) struct Fresh<H>(pub(crate) H);

impl<C, H: Handler<C>> Store<C> for Fresh<H> {
    #[inline(always)]
    fn store_into(self, target: &mut Callback<C>) {
        target.store(self.0);
    }
}

/// A one-shot handler detached from its [`Callback`] but still in the
/// callback's storage: what a freed slot leaves for the loop to run. The
/// storage is read once more, by `invoke`, when [`call`](Detached::call)
/// runs it; dropped without running, it leaks the handler (never frees it).
#[must_use]
pub(crate) struct Detached<C> {
    storage: *mut u8,
    invoke: Option<InvokeFn<C>>,
}

impl<C> Callback<C> {
    /// Detaches the handler: this callback is empty from now on, and the
    /// handler stays in its storage until the returned value runs it. The
    /// handler is then moved once, out of the storage, rather than first
    /// out to a `Callback` on the stack and from there.
    #[inline(always)]
    pub(crate) fn detach(&mut self) -> Detached<C> {
        Detached {
            invoke: self.invoke.take(),
            storage: self.storage.as_mut_ptr().cast(),
        }
    }
}

impl<C> Detached<C> {
    /// Runs the handler with `result`, moving it out of the storage first.
    /// Does nothing when the callback was empty.
    ///
    /// # Safety
    ///
    /// The storage this was detached from must be as `detach` left it: not
    /// written, moved or freed since. The loop runs this right after
    /// freeing the slot, with no code in between.
    #[inline(always)]
    pub(crate) unsafe fn call(self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        if let Some(invoke) = self.invoke {
            // SAFETY: `invoke` was set together with a live handler of its
            // type in the storage at `storage`, which nothing has touched
            // since `detach` took `invoke` out (the caller's promise), so
            // this is the one read of that handler.
            unsafe { invoke(self.storage, Some((io, ctx)), result, None) };
        }
    }
}

impl<C> Drop for Callback<C> {
    fn drop(&mut self) {
        if let Some(invoke) = self.invoke.take() {
            // SAFETY: as in `call`; `Drop` asks for the handler to be dropped.
            unsafe { invoke(self.storage.as_mut_ptr().cast(), None, 0, None) };
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
/// be the only read of it. `shot` is `None`: one-shot handlers are never
/// called as multishot ones (checked, before the read).
unsafe fn invoke<C, H: Handler<C>>(
    storage: *mut u8,
    call: Option<(&mut IO<C>, &mut C)>,
    result: i32,
    shot: Option<&mut ShotCall>,
) {
    assert!(
        shot.is_none(),
        "a one-shot handler called as a multishot one"
    );
    // SAFETY: guaranteed by the caller: a live, properly aligned H, read once.
    let handler = unsafe { ptr::read(storage.cast::<H>()) };
    match call {
        Some((io, ctx)) => handler.complete(io, ctx, result),
        None => drop(handler),
    }
}

/// Runs the multishot handler of type `H` in `storage` by reference, or
/// moves it out and drops it.
///
/// # Safety
///
/// `storage` must hold a live `H` written by `Callback::new_shot`. A drop
/// (no `call`) is the last use of it; a shot leaves it live. With `call`,
/// `shot` is `Some`: a multishot handler is never called as a one-shot one.
unsafe fn invoke_shot<C, H: ShotHandler<C>>(
    storage: *mut u8,
    call: Option<(&mut IO<C>, &mut C)>,
    _result: i32,
    shot: Option<&mut ShotCall>,
) {
    match (call, shot) {
        (Some((io, ctx)), Some(shot)) => {
            // SAFETY: a live, aligned H (the caller's guarantee), borrowed
            // uniquely for this call: the storage belongs to the Callback
            // the caller holds by `&mut`.
            let handler = unsafe { &mut *storage.cast::<H>() };
            shot.flow = handler.shot(io, ctx, shot.shot);
        }
        (None, _) => {
            // SAFETY: a live, aligned H, read for the last time.
            drop(unsafe { ptr::read(storage.cast::<H>()) });
        }
        (Some(_), None) => unreachable!("a multishot handler called as a one-shot one"),
    }
}
