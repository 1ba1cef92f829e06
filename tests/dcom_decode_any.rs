//! `dcom::decode_any`, the single `&[u8]` entry to every DCOM decoder (the fuzzing surface):
//! recorded vectors reach their decoder through it, and no input makes any decoder panic.

use cimrun::protocol::dcom::{DECODERS, decode_any};
use proptest::prelude::*;

fn with_selector(selector: u8, name: &str) -> Vec<u8> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/wmio").join(name);
    let mut data = vec![selector];
    data.extend(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    data
}

#[test]
fn recorded_vectors_reach_their_decoders() {
    assert!(decode_any(&with_selector(0, "mswmio_instanceMyClass.bin")));
    assert!(decode_any(&with_selector(3, "fixture_0.objref.bin")));
    assert!(decode_any(&with_selector(7, "ntlmlogin_req.bin")));
    assert!(decode_any(&with_selector(8, "execquery_req.bin")));
    assert!(decode_any(&with_selector(9, "next_req.bin")));
    // The selector wraps, so every byte value picks a decoder.
    assert!(decode_any(&with_selector(DECODERS, "mswmio_instanceMyClass.bin")));
    // The same bytes are not an ExecQuery request: the selector really picks the decoder.
    assert!(!decode_any(&with_selector(8, "mswmio_instanceMyClass.bin")));
}

#[test]
fn empty_input_is_rejected_by_every_decoder() {
    assert!(!decode_any(&[]));
    for selector in 0..DECODERS {
        assert!(!decode_any(&[selector]), "decoder {selector} accepted nothing");
    }
}

proptest! {
    #[test]
    fn no_input_panics(selector in 0..DECODERS, body in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut data = vec![selector];
        data.extend(body);
        let _ = decode_any(&data);
    }
}
