//! The config file: the input is written to a file and loaded with
//! `Config::load`, which must answer Ok or an error, never panic. (The
//! config is read once, on the main thread, so unlike rules_loader this
//! runs on libFuzzer's main thread.)
#![no_main]

use std::sync::OnceLock;

use alertgate::config::{Config, Overrides};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
}

fuzz_target!(|data: &[u8]| {
    let path = dir().path().join("alertgate.yml");
    std::fs::write(&path, data).expect("write config file");
    let _ = Config::load(&Overrides { config_file: Some(path), ..Default::default() });
});
