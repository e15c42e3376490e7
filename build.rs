//! Generates the C header with cbindgen (pinned in Cargo.toml: output differs between versions).
//!
//! The header is always written to `$OUT_DIR/wsnative.h`. Outside CI it is also written to
//! `include/wsnative.h` when it changed; in CI (`CI` set) the committed file is left alone and
//! the test `header_is_current` fails when it differs from the generated one.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    // cbindgen reads the whole crate (a `pub const` anywhere lands in the header).
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=CI");
    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let v = |k: &str| std::env::var(k).unwrap();
    config.after_includes = Some(format!(
        "\n/** The version of this header: major, minor, patch, and all three as text. */\n\
         #define WSN_VERSION_MAJOR {}\n#define WSN_VERSION_MINOR {}\n#define WSN_VERSION_PATCH {}\n\
         #define WSN_VERSION \"{}\"\n",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH"),
        v("CARGO_PKG_VERSION")
    ));
    let bindings = match cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
    {
        Ok(b) => b,
        Err(e) => {
            // A syntax error in src/ffi: let rustc report it properly.
            println!("cargo:warning=cbindgen could not generate the header: {e}");
            return;
        }
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("wsnative.h");
    bindings.write_to_file(&out);
    if std::env::var_os("CI").is_none() {
        let generated = std::fs::read(&out).unwrap();
        let committed = dir.join("include/wsnative.h");
        if std::fs::read(&committed).ok().as_deref() != Some(generated.as_slice()) {
            std::fs::create_dir_all(dir.join("include")).unwrap();
            std::fs::write(&committed, generated).unwrap();
        }
    }
}
