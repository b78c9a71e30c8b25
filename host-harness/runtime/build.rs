//! Builds the oauth2-plugin component for wasm32-wasip2 and leaves it in OUT_DIR for `include_bytes!`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const TARGET: &str = "wasm32-wasip2";
const ARTIFACT: &str = "oauth2_plugin.wasm";
/// The workspace's profile for the component (sized, where the host's is not).
const PROFILE: &str = "component";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .ancestors()
        .nth(2)
        .expect("host-harness/runtime lives inside the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    for input in ["src", "wit", "build.rs", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", workspace.join(input).display());
    }

    // A separate target directory: the outer build holds the lock on the workspace's own.
    let target_dir = workspace.join("target").join("component");
    let output = nested_cargo(&workspace, &target_dir)
        .output()
        .unwrap_or_else(|e| fail(&format!("could not run cargo for the component: {e}")));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut message = format!("building the component failed:\n{stderr}");
        if missing_std(&stderr) {
            message.push_str(&format!(
                "\nthe standard library for {TARGET} is not installed: run `rustup target add {TARGET}`"
            ));
        }
        fail(&message);
    }

    let built = target_dir.join(TARGET).join(PROFILE).join(ARTIFACT);
    let bytes = std::fs::read(&built)
        .unwrap_or_else(|e| fail(&format!("could not read {}: {e}", built.display())));
    // Its digest, so hosts in other languages can show they run the same build.
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    std::fs::write(out_dir.join(ARTIFACT), &bytes)
        .and_then(|()| std::fs::write(out_dir.join(format!("{ARTIFACT}.sha256")), digest))
        .unwrap_or_else(|e| fail(&format!("could not write to {}: {e}", out_dir.display())));
}

/// The outer build's environment describes the host build; the component must not inherit it.
fn nested_cargo(workspace: &Path, target_dir: &Path) -> Command {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
            "-p",
            "oauth2-plugin",
        ])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir);
    for name in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(name);
    }
    for (name, _) in env::vars_os() {
        if name.to_string_lossy().starts_with("CARGO_PROFILE_") {
            command.env_remove(name);
        }
    }
    command
}

fn missing_std(stderr: &str) -> bool {
    stderr.contains("E0463")
        || stderr.contains("can't find crate for `core`")
        || stderr.contains("can't find crate for `std`")
}

fn fail(message: &str) -> ! {
    // cargo shows a build script's stderr when it fails; a panic would add a backtrace hint.
    eprintln!("{message}");
    std::process::exit(1);
}
