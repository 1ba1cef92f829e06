//! Times NTLM message unsealing (RC4 + HMAC-MD5) of a reply-sized message, the crypto every
//! sealed WS-Man reply goes through: `NtlmSession::unseal_message`, which decrypts and hashes
//! in one pass, against the two passes it replaced (our RC4, then the md-5 crate's HMAC-MD5).
//!
//! `cargo run --release --example unseal_bench -- [BYTES] [ROUNDS]` (defaults: 300000, 200).

use std::time::Instant;

use cimrun::protocol::ntlm::{NtlmSession, Rc4, Side};
use hmac::{Hmac, KeyInit, Mac};

const FLAGS: u32 = 0xe28a_8233;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let size = args.next().unwrap_or(300_000);
    let rounds = args.next().unwrap_or(200);
    let key = [0x55u8; 16];
    let plain: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    // Each round seals a fresh message on a fresh session pair, so the sequence numbers match.
    let sealed: Vec<(Vec<u8>, [u8; 16])> = (0..rounds)
        .map(|_| {
            let mut data = plain.clone();
            let sig = NtlmSession::new(FLAGS, &key, Side::Server).seal_message(&mut data);
            (data, sig)
        })
        .collect();
    let mb = (size * rounds) as f64 / 1e6;
    for _ in 0..3 {
        let mut work = sealed.clone();
        let start = Instant::now();
        for (data, sig) in &mut work {
            NtlmSession::new(FLAGS, &key, Side::Client).unseal_message(data, sig).expect("a valid signature");
        }
        let one_pass = start.elapsed().as_secs_f64();
        assert!(work.iter().all(|(d, _)| *d == plain));

        let mut work = sealed.clone();
        let start = Instant::now();
        for (data, _) in &mut work {
            // The server-to-client sealing key of the session above is not public, so this
            // decrypts with a key of the same length: the cost does not depend on the key.
            Rc4::new(&key).apply(data);
            let mut mac = <Hmac<md5::Md5> as KeyInit>::new_from_slice(&key).expect("any key length");
            mac.update(&0u32.to_le_bytes());
            mac.update(data);
            std::hint::black_box(mac.finalize());
        }
        let two_passes = start.elapsed().as_secs_f64();
        println!(
            "{size} bytes: one pass {:.0} MB/s, RC4 then md-5 HMAC {:.0} MB/s ({:.0}% less time)",
            mb / one_pass,
            mb / two_passes,
            100.0 * (1.0 - one_pass / two_passes)
        );
    }
    // Each primitive alone, to see how much of the one pass is overlap.
    let mut work = plain.clone();
    let timed = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        (0..rounds).for_each(|_| f());
        mb / start.elapsed().as_secs_f64()
    };
    let ours = timed(&mut || {
        std::hint::black_box(cimrun::protocol::ntlm::md5(&[&plain]));
    });
    let crate_md5 = timed(&mut || {
        use md5::Digest;
        std::hint::black_box(md5::Md5::digest(&plain));
    });
    let rc4 = timed(&mut || Rc4::new(&key).apply(&mut work));
    println!("alone: our MD5 {ours:.0} MB/s, md-5 crate {crate_md5:.0} MB/s, RC4 {rc4:.0} MB/s");
}
