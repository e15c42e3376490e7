//! One version number everywhere: the crate, the header's WSN_VERSION macros, wsn_version(), the
//! Python package (pyproject.toml, __version__, the C API version _lib.py accepts), the C#
//! project's <Version> (the NuGet package built by tests/packaging/nuget.sh takes the crate's
//! version and checks it), and the C install's pkg-config and CMake files (made from Cargo.toml
//! by scripts/install-c.sh).

use std::ffi::CStr;

const V: &str = env!("CARGO_PKG_VERSION");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text between `before` and the next `after` on the first line that has `before`.
fn between(text: &str, before: &str, after: &str) -> String {
    let start = text.find(before).unwrap_or_else(|| panic!("no {before:?}")) + before.len();
    let end = text[start..].find(after).unwrap() + start;
    text[start..end].to_owned()
}

#[test]
fn every_version_number_is_the_crates() {
    let native = unsafe { CStr::from_ptr(wsnative::ffi::wsn_version()) };
    assert_eq!(native.to_str().unwrap(), V, "wsn_version()");
    assert_eq!(wsnative::VERSION, V);
    let header = read("include/wsnative.h");
    assert_eq!(between(&header, "#define WSN_VERSION \"", "\""), V);
    let parts: Vec<&str> = V.split('.').collect();
    for (name, want) in ["MAJOR", "MINOR", "PATCH"].iter().zip(&parts) {
        assert_eq!(
            between(&header, &format!("#define WSN_VERSION_{name} "), "\n"),
            *want,
            "WSN_VERSION_{name}"
        );
    }
    let pyproject = read("bindings/python/pyproject.toml");
    assert_eq!(
        between(&pyproject, "\nversion = \"", "\""),
        V,
        "pyproject.toml"
    );
    let init = read("bindings/python/wsnative/__init__.py");
    assert_eq!(between(&init, "__version__ = \"", "\""), V, "__version__");
    let lib = read("bindings/python/wsnative/_lib.py");
    assert_eq!(
        between(&lib, "API_VERSION: tuple[int, int] = (", ")"),
        format!("{}, {}", parts[0], parts[1]),
        "_lib.py API_VERSION"
    );
    let csproj = read("bindings/csharp/WsNative/WsNative.csproj");
    assert_eq!(
        between(&csproj, "<Version>", "</Version>"),
        V,
        "WsNative.csproj"
    );
    let nuspec = read("bindings/csharp/WsNative.nuspec");
    assert!(
        nuspec.contains("<version>$version$</version>"),
        "the nuspec takes the crate's version"
    );
}
