#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cimrun_fuzz::wsman_response(data));
