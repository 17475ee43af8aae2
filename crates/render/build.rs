//! Rebuilds the crate when the embedded default templates or locale files change.

fn main() {
    println!("cargo:rerun-if-changed=../../templates");
    println!("cargo:rerun-if-changed=../../locales");
}
