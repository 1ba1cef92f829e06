#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cimrun_fuzz::dcom_wmio(data));
