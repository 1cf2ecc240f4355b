//! Compiles the `.proto` files with `protox` (pure Rust: no `protoc` needed) and generates Rust with prost.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["dwsync/v5/tables.proto", "dwsync/internal/v1/handoff.proto", "dwsync/internal/v1/sync_config.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["."])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
