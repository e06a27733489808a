//! Any text as a config file: accepted or refused with a reason, never a
//! panic (rvsd --check-config and SIGHUP reloads run this on operators' files).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rvs_control::config::parse(std::path::Path::new("fuzz.toml"), text);
    }
});
