//! Link settings of the component build; the native build needs none.

fn main() {
    // Every connector step instantiates the component afresh, so its linear memory is paid per
    // step. Rust's 1 MiB default stack is most of it; the grant logic's deepest stack, JSON
    // nested to serde_json's limit of 128 levels, uses a few KiB (tests/hostile_input.rs).
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=-zstack-size=131072");
        // Without std nothing links wasi-libc, yet the target's compiler-builtins leave the
        // `mem*` functions to it, and src/runtime.rs uses its `malloc`: only those are taken.
        println!("cargo:rustc-link-lib=c");
    }
}
