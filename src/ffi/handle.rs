//! Handles: which Rust value stands behind each C pointer type, and who owns it (rustls-ffi's
//! `Castable` is the model). Every conversion between a handle and its value goes through the
//! functions here, so the casts and the ownership rules live in one place.
//!
//! - `Owned = Boxed`: the handle is a `Box<Rust>` the application owns (options, servers,
//!   queues); `_new` hands it out with [`to_box`], `_free` takes it back with [`free_box`].
//! - `Owned = Shared`: the handle is one reference of an `Arc<Rust>` (connections): the
//!   application's reference is handed out with [`to_arc`] and given back with [`free_arc`];
//!   [`as_ptr`] shows a value to a callback without handing out a reference; a call holds a
//!   reference of its own while it runs ([`try_clone_arc`]), so that a callback freeing the
//!   handle meanwhile cannot pull the value from under it.
//! - `Owned = Borrowed`: a pointer valid only during a callback (the upgrade request).

use crate::error::{Error, Result};
use std::sync::Arc;

/// A C handle type and the Rust value behind it.
pub(crate) trait Castable {
    /// The value the handle points at.
    type Rust;
    /// Who owns it: [`Boxed`], [`Shared`] or [`Borrowed`].
    type Owned;
    /// The argument's name in errors ("conn is NULL").
    const WHAT: &'static str;
}

/// The application owns a `Box` (freed once with the handle's `_free`).
pub(crate) enum Boxed {}
/// The application owns one reference of an `Arc`.
pub(crate) enum Shared {}
/// Valid only during the callback that was given it.
pub(crate) enum Borrowed {}

/// Borrows the value behind a handle; NULL is an INVALID_ARGUMENT naming the argument.
///
/// Safety: `p` is NULL or a live handle of type `C`.
pub(crate) unsafe fn try_ref<'a, C: Castable>(p: *const C) -> Result<&'a C::Rust> {
    (p as *const C::Rust)
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("{} is NULL", C::WHAT)))
}

/// Borrows the value behind an owned handle mutably (options being configured).
///
/// Safety: `p` is NULL or a live handle of type `C` that no other thread uses now.
pub(crate) unsafe fn try_mut<'a, C: Castable<Owned = Boxed>>(p: *mut C) -> Result<&'a mut C::Rust> {
    (p as *mut C::Rust)
        .as_mut()
        .ok_or_else(|| Error::invalid(format!("{} is NULL", C::WHAT)))
}

/// Hands a new value to the application as its handle.
pub(crate) fn to_box<C: Castable<Owned = Boxed>>(value: C::Rust) -> *mut C {
    Box::into_raw(Box::new(value)) as *mut C
}

/// Takes an owned handle back (None for NULL); the value drops with the returned box.
///
/// Safety: `p` is NULL or a live handle of type `C`, not used again after this.
pub(crate) unsafe fn free_box<C: Castable<Owned = Boxed>>(p: *mut C) -> Option<Box<C::Rust>> {
    (!p.is_null()).then(|| Box::from_raw(p as *mut C::Rust))
}

/// Hands one reference of `value` to the application as its handle (freed with [`free_arc`]).
pub(crate) fn to_arc<C: Castable<Owned = Shared>>(value: Arc<C::Rust>) -> *mut C {
    Arc::into_raw(value) as *mut C
}

/// The handle of a shared value, without handing out a reference (for a callback's argument,
/// or an event that shows a handle the application already owns).
pub(crate) fn as_ptr<C: Castable<Owned = Shared>>(value: &Arc<C::Rust>) -> *mut C {
    Arc::as_ptr(value) as *mut C
}

/// A reference of its own to the value behind a shared handle, for the length of one call: a
/// callback on another thread may free the application's handle while the call is still
/// inside (a close whose CLOSE callback frees the connection, say), and the value must outlive
/// the call.
///
/// Safety: `p` is NULL or a live handle of type `C`.
pub(crate) unsafe fn try_clone_arc<C: Castable<Owned = Shared>>(
    p: *const C,
) -> Result<Arc<C::Rust>> {
    try_ref(p)?;
    Arc::increment_strong_count(p as *const C::Rust);
    Ok(Arc::from_raw(p as *const C::Rust))
}

/// Takes the application's reference back (None for NULL).
///
/// Safety: `p` is NULL or a live handle of type `C` whose reference the application gives up.
pub(crate) unsafe fn free_arc<C: Castable<Owned = Shared>>(p: *const C) -> Option<Arc<C::Rust>> {
    (!p.is_null()).then(|| Arc::from_raw(p as *const C::Rust))
}

/// An out-parameter, checked for NULL before any work is done.
///
/// Safety: `p` is NULL or points to writable memory for a `T`.
pub(crate) unsafe fn out_arg<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T> {
    p.as_mut()
        .ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// Lends a value to a callback as its handle, for the length of the call.
pub(crate) fn lend<C: Castable<Owned = Borrowed>>(value: &C::Rust) -> *mut C {
    value as *const C::Rust as *mut C
}
