//! `#[ffi_fn]`: the one export attribute of wsnative's C ABI (hyper's `ffi_fn!` is the model).
//!
//! It wraps the body of an `extern "C"` function so that no panic crosses into C and errors
//! become a status plus the thread's last error:
//!
//! - a function returning `wsn_status` has a body of type `crate::Result<()>`: `Ok` becomes
//!   `WSN_OK`, `Err(e)` its status with `wsn_last_error()` set, a panic `WSN_ERR_INTERNAL`;
//! - any other function keeps its body's type, and a panic returns that type's
//!   `PanicDefault` (NULL, 0, nothing) with the last error set.
//!
//! It is an attribute rather than a `macro_rules!` wrapper because cbindgen reads the source
//! without expanding macros: the signature and its doc comment must stay visible as written.
//! The function must also carry `#[no_mangle]` (checked here), which is what cbindgen exports.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, spanned::Spanned, Error, ItemFn, ReturnType, Type};

#[proc_macro_attribute]
pub fn ffi_fn(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return Error::new(attr.span(), "#[ffi_fn] takes no arguments")
            .to_compile_error()
            .into();
    }
    let mut f = parse_macro_input!(item as ItemFn);
    if let Err(e) = check(&f) {
        return e.to_compile_error().into();
    }
    let body = &f.block;
    let wrapped = if returns_status(&f.sig.output) {
        quote!({ crate::ffi::status(|| -> crate::Result<()> #body) })
    } else {
        let ret = match &f.sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, t) => quote!(#t),
        };
        quote!({ crate::ffi::guard(|| -> #ret #body) })
    };
    *f.block = syn::parse2(wrapped).expect("a block");
    quote!(#f).into()
}

/// An export is `extern "C"` and `#[no_mangle]`, so that cbindgen and the linker both see it.
fn check(f: &ItemFn) -> syn::Result<()> {
    let is_c = f
        .sig
        .abi
        .as_ref()
        .and_then(|a| a.name.as_ref())
        .is_some_and(|n| n.value() == "C");
    if !is_c {
        return Err(Error::new(
            f.sig.span(),
            "#[ffi_fn] needs an extern \"C\" fn",
        ));
    }
    if !f.attrs.iter().any(|a| a.path().is_ident("no_mangle")) {
        return Err(Error::new(
            f.sig.ident.span(),
            "#[ffi_fn] needs #[no_mangle] (cbindgen exports only what it sees marked so)",
        ));
    }
    Ok(())
}

fn returns_status(output: &ReturnType) -> bool {
    match output {
        ReturnType::Type(_, t) => match &**t {
            Type::Path(p) => p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "wsn_status"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}
