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
use std::ptr::{self, NonNull};

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

/// The erased functions of one handler type: run it once with a result
/// (moving it out of its storage), run it by reference with one multishot
/// result, or drop it. One table per type, a `'static` promoted from an
/// associated constant, so that a call is a load and an indirect call with
/// its arguments in registers and no test of what kind of call it is: a
/// one-shot handler's table refuses a shot, and a multishot one's refuses a
/// one-shot call (both panic before touching the storage), so that neither
/// is ever read as the other's type.
pub(crate) struct HandlerFns<C> {
    call: unsafe fn(*mut u8, &mut IO<C>, &mut C, i32),
    shot: unsafe fn(*mut u8, &mut IO<C>, &mut C, RawShot) -> Flow,
    drop: unsafe fn(*mut u8),
}

/// Where a table is: `&FNS` of an associated constant, which the compiler
/// promotes to a static allocation (no `Drop`, no interior mutability), so
/// the pointer never dangles.
macro_rules! fns_of {
    ($table:ty) => {
        NonNull::from(&<$table>::FNS)
    };
}

/// Compiles only if `&FNS` is promoted to a static allocation in a generic
/// context (else it would borrow a temporary): the guarantee `fns_of!`
/// relies on, checked for a context type that is `'static`, since
/// promotion does not depend on lifetimes.
#[allow(dead_code)]
fn fns_are_promoted<H: Handler<()>, S: ShotHandler<()>>() -> [&'static HandlerFns<()>; 2] {
    [&OneShotFns::<(), H>::FNS, &ShotFns::<(), S>::FNS]
}

/// The table `fns` points at.
#[inline(always)]
fn table<'a, C>(fns: NonNull<HandlerFns<C>>) -> &'a HandlerFns<C> {
    // SAFETY: every such pointer is made by `fns_of!`, from a promoted
    // constant: a static allocation, never written, alive for the whole
    // program.
    unsafe { fns.as_ref() }
}

/// The table of the one-shot handler type `H`.
struct OneShotFns<C, H>(PhantomData<fn() -> (C, H)>);

impl<C, H: Handler<C>> OneShotFns<C, H> {
    const FNS: HandlerFns<C> = HandlerFns {
        call: call_once::<C, H>,
        shot: refuse_shot::<C>,
        drop: drop_handler::<H>,
    };
}

/// The table of the multishot handler type `H`.
struct ShotFns<C, H>(PhantomData<fn() -> (C, H)>);

impl<C, H: ShotHandler<C>> ShotFns<C, H> {
    const FNS: HandlerFns<C> = HandlerFns {
        call: refuse_call::<C>,
        shot: call_shot::<C, H>,
        drop: drop_handler::<H>,
    };
}

/// An erased, owned handler, or nothing. `repr(C)`, the storage first, so
/// that a slot's callback storage is at the slot's address (see `Slot`).
#[repr(C)]
pub(crate) struct Callback<C> {
    storage: MaybeUninit<[usize; INLINE_WORDS]>,
    /// `Some` exactly when `storage` holds a live handler of the type this
    /// table was instantiated for. A pointer, not a `&'static`, which would
    /// ask `C: 'static` of the context: it points at a promoted constant
    /// (see `fns_of`), alive for the whole program.
    fns: Option<NonNull<HandlerFns<C>>>,
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
            fns: None,
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
            Callback::inline_with(handler, fns_of!(ShotFns<C, H>))
        } else {
            Callback::inline_with(Box::new(handler), fns_of!(ShotFns<C, Box<H>>))
        }
    }

    fn inline<H: Handler<C>>(handler: H) -> Callback<C> {
        Callback::inline_with(handler, fns_of!(OneShotFns<C, H>))
    }

    fn inline_with<H>(handler: H, fns: NonNull<HandlerFns<C>>) -> Callback<C> {
        assert!(fits_inline::<H>());
        let mut callback = Callback::empty();
        let target = callback.storage.as_mut_ptr().cast::<H>();
        // SAFETY: `target` is valid for writes of H: the storage is at least
        // size_of::<H>() bytes and at least align_of::<H>()-aligned (asserted above).
        unsafe { ptr::write(target, handler) };
        callback.fns = Some(fns);
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
            self.store_inline(handler, fns_of!(OneShotFns<C, H>));
        } else {
            self.store_inline(Box::new(handler), fns_of!(OneShotFns<C, Box<H>>));
        }
    }

    #[inline(always)]
    fn store_inline<H>(&mut self, handler: H, fns: NonNull<HandlerFns<C>>) {
        assert!(fits_inline::<H>());
        let target = self.storage.as_mut_ptr().cast::<H>();
        // SAFETY: `target` is valid for writes of H: the storage is at least
        // size_of::<H>() bytes and at least align_of::<H>()-aligned (asserted
        // above). It holds no live handler (`fns` is `None`), so nothing
        // is overwritten that would need a drop.
        unsafe { ptr::write(target, handler) };
        self.fns = Some(fns);
    }

    /// Whether a handler is stored.
    pub(crate) fn is_some(&self) -> bool {
        self.fns.is_some()
    }

    /// Runs the handler, consuming it. Does nothing when empty.
    ///
    /// By `&mut self`, not by value: the handler is moved out of `storage`
    /// once, by its `call`, rather than the whole `Callback` being moved
    /// into this call first.
    #[inline(always)]
    pub(crate) fn call(&mut self, io: &mut IO<C>, ctx: &mut C, result: i32) {
        if let Some(fns) = self.fns.take() {
            // SAFETY: `fns` was set together with a live handler of its type
            // in `storage`; taking it out first means it is read exactly once.
            unsafe { (table(fns).call)(self.storage.as_mut_ptr().cast(), io, ctx, result) };
        }
    }

    /// Runs a multishot handler with one result, keeping it. Does nothing
    /// (and says `Continue`) when empty.
    pub(crate) fn call_shot(&mut self, io: &mut IO<C>, ctx: &mut C, shot: RawShot) -> Flow {
        let Some(fns) = self.fns else {
            return Flow::Continue;
        };
        let storage = self.storage.as_mut_ptr().cast();
        // SAFETY: `fns` is set together with a live handler of its type in
        // `storage`, made by `new_shot` (the loop calls this only for
        // multishot slots; a one-shot handler's table refuses it). The
        // handler is used by reference and stays live; `fns` stays set.
        unsafe { (table(fns).shot)(storage, io, ctx, shot) }
    }

    /// Forgets the handler without dropping it: whatever it owns (a buffer the
    /// kernel may still write into) is leaked, never freed.
    pub(crate) fn leak(mut self) {
        self.fns = None;
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
/// storage is read once more, by its table's `call`, when [`call`](Detached::call)
/// runs it; dropped without running, it leaks the handler (never frees it).
#[must_use]
pub(crate) struct Detached<C> {
    storage: *mut u8,
    fns: Option<NonNull<HandlerFns<C>>>,
}

impl<C> Callback<C> {
    /// Detaches the handler: this callback is empty from now on, and the
    /// handler stays in its storage until the returned value runs it. The
    /// handler is then moved once, out of the storage, rather than first
    /// out to a `Callback` on the stack and from there.
    #[inline(always)]
    pub(crate) fn detach(&mut self) -> Detached<C> {
        Detached {
            fns: self.fns.take(),
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
        if let Some(fns) = self.fns {
            // SAFETY: `fns` was set together with a live handler of its
            // type in the storage at `storage`, which nothing has touched
            // since `detach` took `fns` out (the caller's promise), so this
            // is the one read of that handler.
            unsafe { (table(fns).call)(self.storage, io, ctx, result) };
        }
    }
}

impl<C> Drop for Callback<C> {
    fn drop(&mut self) {
        if let Some(fns) = self.fns.take() {
            // SAFETY: as in `call`; `Drop` asks for the handler to be dropped.
            unsafe { (table(fns).drop)(self.storage.as_mut_ptr().cast()) };
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

/// Moves the one-shot handler of type `H` out of `storage` and runs it.
///
/// # Safety
///
/// `storage` must hold a live `H` written by `Callback::inline` or
/// `Callback::store`, and this must be the only read of it.
unsafe fn call_once<C, H: Handler<C>>(storage: *mut u8, io: &mut IO<C>, ctx: &mut C, result: i32) {
    // SAFETY: guaranteed by the caller: a live, properly aligned H, read once.
    let handler = unsafe { ptr::read(storage.cast::<H>()) };
    handler.complete(io, ctx, result);
}

/// Runs the multishot handler of type `H` in `storage` by reference.
///
/// # Safety
///
/// `storage` must hold a live `H` written by `Callback::new_shot`, which
/// stays live.
unsafe fn call_shot<C, H: ShotHandler<C>>(
    storage: *mut u8,
    io: &mut IO<C>,
    ctx: &mut C,
    shot: RawShot,
) -> Flow {
    // SAFETY: a live, aligned H (the caller's guarantee), borrowed uniquely
    // for this call: the storage belongs to the Callback the caller holds by
    // `&mut`.
    let handler = unsafe { &mut *storage.cast::<H>() };
    handler.shot(io, ctx, shot)
}

/// Moves the handler of type `H` out of `storage` and drops it.
///
/// # Safety
///
/// `storage` must hold a live `H`, and this must be its last use.
unsafe fn drop_handler<H>(storage: *mut u8) {
    // SAFETY: a live, aligned H, read for the last time (the caller's
    // guarantee).
    drop(unsafe { ptr::read(storage.cast::<H>()) });
}

/// A one-shot handler's table entry for a shot: refused, before the storage
/// is touched.
///
/// # Safety
///
/// None needed (it reads nothing); `unsafe` for the table's type.
unsafe fn refuse_shot<C>(_: *mut u8, _: &mut IO<C>, _: &mut C, _: RawShot) -> Flow {
    panic!("a one-shot handler called as a multishot one")
}

/// A multishot handler's table entry for a one-shot call: refused, before
/// the storage is touched.
///
/// # Safety
///
/// None needed (it reads nothing); `unsafe` for the table's type.
unsafe fn refuse_call<C>(_: *mut u8, _: &mut IO<C>, _: &mut C, _: i32) {
    unreachable!("a multishot handler called as a one-shot one")
}
