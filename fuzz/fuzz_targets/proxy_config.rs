//! The host proxy's configuration file (`host::proxy::config`): operator input, but the
//! one file that decides what the guest may reach, so it must fail with an error, never a
//! panic, whatever it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = host::proxy::config::from_toml_str(text) {
            // Every named egress port is a configured one.
            for port in config.egress_names.keys() {
                assert!(config
                    .egress
                    .iter()
                    .chain(&config.egress_tls)
                    .any(|r| r.port == *port));
            }
        }
    }
});
