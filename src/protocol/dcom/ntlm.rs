//! NTLMv2 (MS-NLMP) for DCE/RPC: the three handshake messages, ending in the
//! [`NtlmSession`] (shared with WS-Man, in [`crate::protocol::ntlm`]) that signs every PDU and
//! seals stubs.

use md4::{Digest, Md4};

use super::cursor::Cursor;
use crate::protocol::ntlm::{MESSAGE_SIGNATURE as SIGNATURE, NtlmSession, Rc4, Side, flags, hmac_md5};
use crate::protocol::{Category, Error};

/// Windows 10 build 19041, NTLM revision 15: the VERSION field is informational.
const VERSION: [u8; 8] = [10, 0, 0x61, 0x4a, 0, 0, 0, 15];
const AV_EOL: u16 = 0;
const AV_FLAGS: u16 = 6;
const AV_TIMESTAMP: u16 = 7;
/// MsvAvFlags bit: the AUTHENTICATE message carries a MIC.
const AV_FLAG_MIC: u32 = 0x2;
/// Offset of the MIC in an AUTHENTICATE message that has a VERSION field.
const MIC_OFFSET: usize = 72;
const AUTHENTICATE_HEADER: usize = 88;

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// NTOWFv1: MD4 of the UTF-16LE password.
pub fn nt_owf_v1(password: &str) -> [u8; 16] {
    Md4::digest(utf16le(password)).into()
}

/// NTOWFv2 (MS-NLMP 3.3.2): HMAC-MD5 keyed with NTOWFv1 over the upper-cased user and the domain.
pub fn nt_owf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let mut who = utf16le(&user.to_uppercase());
    who.extend(utf16le(domain));
    hmac_md5(&nt_owf_v1(password), &[&who])
}

/// The NTLMv2 response (NTProofStr followed by the client blob) and the session base key.
pub fn ntlmv2_response(
    nt_owf_v2: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    time: u64,
    target_info: &[u8],
) -> (Vec<u8>, [u8; 16]) {
    let mut temp = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
    temp.extend(time.to_le_bytes());
    temp.extend(client_challenge);
    temp.extend([0; 4]);
    temp.extend(target_info);
    temp.extend([0; 4]);
    let proof = hmac_md5(nt_owf_v2, &[server_challenge, &temp]);
    let session_base_key = hmac_md5(nt_owf_v2, &[&proof]);
    let mut response = proof.to_vec();
    response.extend(temp);
    (response, session_base_key)
}

/// Per-call random inputs, injectable so the handshake is reproducible in tests.
#[derive(Debug, Clone, Copy)]
pub struct Nonces {
    pub client_challenge: [u8; 8],
    /// The exported session key sent under key exchange.
    pub session_key: [u8; 16],
}

impl Nonces {
    /// Fresh values from the system's secure random source.
    pub fn random() -> Result<Nonces, Error> {
        use ring::rand::{SecureRandom, SystemRandom};
        let rng = SystemRandom::new();
        let mut n = Nonces { client_challenge: [0; 8], session_key: [0; 16] };
        rng.fill(&mut n.client_challenge)
            .and_then(|_| rng.fill(&mut n.session_key))
            .map_err(|_| Error::new(Category::AuthFailed, "no secure random source for NTLM"))?;
        Ok(n)
    }
}

/// The client side of an NTLMv2 handshake.
#[derive(Debug, Clone)]
pub struct NtlmClient {
    user: String,
    domain: String,
    nt_owf_v2: [u8; 16],
    workstation: String,
    negotiate: Vec<u8>,
}

impl NtlmClient {
    /// A client for `DOMAIN\user`, `user@domain` (sent whole, domain empty, as Windows accepts)
    /// or a local `user`. `seal` asks for confidentiality (PKT_PRIVACY) besides signing.
    pub fn new(username: &str, password: &str, workstation: &str, seal: bool) -> NtlmClient {
        let (domain, user) = match username.split_once('\\') {
            Some((d, u)) => (d.to_string(), u.to_string()),
            None => (String::new(), username.to_string()),
        };
        let nt_owf_v2 = nt_owf_v2(password, &user, &domain);
        let mut f = flags::UNICODE
            | flags::REQUEST_TARGET
            | flags::SIGN
            | flags::NTLM
            | flags::ALWAYS_SIGN
            | flags::EXTENDED_SESSION_SECURITY
            | flags::VERSION
            | flags::N128
            | flags::KEY_EXCH
            | flags::N56;
        if seal {
            f |= flags::SEAL;
        }
        let mut negotiate = SIGNATURE.to_vec();
        negotiate.extend(1u32.to_le_bytes());
        negotiate.extend(f.to_le_bytes());
        // Empty domain and workstation fields: both point at the end of the fixed part.
        for _ in 0..2 {
            negotiate.extend([0, 0, 0, 0]);
            negotiate.extend(40u32.to_le_bytes());
        }
        negotiate.extend(VERSION);
        NtlmClient { user, domain, nt_owf_v2, workstation: workstation.to_string(), negotiate }
    }

    /// The NEGOTIATE_MESSAGE.
    pub fn negotiate(&self) -> &[u8] {
        &self.negotiate
    }

    /// Answers a CHALLENGE_MESSAGE: the AUTHENTICATE_MESSAGE and the session security.
    /// `now` is the client time in FILETIME units, used when the server sends no timestamp.
    pub fn authenticate(&self, challenge: &[u8], nonces: Nonces, now: u64) -> Result<(Vec<u8>, NtlmSession), Error> {
        let ch = Challenge::decode(challenge).map_err(|e| bad_challenge(&e.to_string()))?;
        let ours = u32::from_le_bytes(self.negotiate.get(12..16).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]));
        let negotiated = ch.flags & ours;
        for (flag, name) in [
            (flags::EXTENDED_SESSION_SECURITY, "extended session security"),
            (flags::N128, "128-bit keys"),
            (flags::SIGN, "signing"),
            (flags::UNICODE, "Unicode"),
        ] {
            if negotiated & flag == 0 {
                return Err(Error::new(Category::AuthFailed, format!("the server does not offer NTLM {name}")));
            }
        }
        if ours & flags::SEAL != 0 && negotiated & flags::SEAL == 0 {
            return Err(Error::new(Category::AuthFailed, "the server does not offer NTLM sealing"));
        }

        // With a server timestamp the client uses it and must add a MIC (MS-NLMP 3.1.5.1.2).
        let timestamp = ch.av_pair(AV_TIMESTAMP).and_then(|v| v.try_into().ok()).map(u64::from_le_bytes);
        let target_info = match timestamp {
            Some(_) => with_mic_flag(&ch.target_info),
            None => ch.target_info.clone(),
        };
        let (nt_response, session_base_key) = ntlmv2_response(
            &self.nt_owf_v2,
            &ch.server_challenge,
            &nonces.client_challenge,
            timestamp.unwrap_or(now),
            &target_info,
        );
        let lm_response = match timestamp {
            Some(_) => vec![0u8; 24],
            None => {
                let mut lm = hmac_md5(&self.nt_owf_v2, &[&ch.server_challenge, &nonces.client_challenge]).to_vec();
                lm.extend(nonces.client_challenge);
                lm
            }
        };
        let (exported, encrypted_key) = if negotiated & flags::KEY_EXCH != 0 {
            let mut k = nonces.session_key;
            Rc4::new(&session_base_key).apply(&mut k);
            (nonces.session_key, k.to_vec())
        } else {
            (session_base_key, Vec::new())
        };

        let payload: [&[u8]; 6] = [
            &lm_response,
            &nt_response,
            &utf16le(&self.domain),
            &utf16le(&self.user),
            &utf16le(&self.workstation),
            &encrypted_key,
        ];
        let mut msg = SIGNATURE.to_vec();
        msg.extend(3u32.to_le_bytes());
        let mut offset = AUTHENTICATE_HEADER;
        for field in payload {
            let len = u16::try_from(field.len())
                .map_err(|_| Error::new(Category::AuthFailed, "NTLM field longer than 64 KiB"))?;
            msg.extend(len.to_le_bytes());
            msg.extend(len.to_le_bytes());
            msg.extend((offset as u32).to_le_bytes());
            offset += field.len();
        }
        msg.extend(negotiated.to_le_bytes());
        msg.extend(VERSION);
        msg.extend([0u8; 16]);
        for field in payload {
            msg.extend(field);
        }
        if timestamp.is_some() {
            let mic = hmac_md5(&exported, &[&self.negotiate, challenge, &msg]);
            if let Some(slot) = msg.get_mut(MIC_OFFSET..MIC_OFFSET + 16) {
                slot.copy_from_slice(&mic);
            }
        }
        Ok((msg, NtlmSession::new(negotiated, &exported, Side::Client)))
    }
}

fn bad_challenge(detail: &str) -> Error {
    Error::new(Category::AuthFailed, format!("malformed NTLM challenge: {detail}"))
}

/// The target info with MsvAvFlags announcing a MIC, added or merged before the end marker.
fn with_mic_flag(target_info: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(target_info.len() + 8);
    let mut flagged = false;
    for (id, value) in av_pairs(target_info) {
        if id == AV_EOL {
            break;
        }
        out.extend(id.to_le_bytes());
        out.extend((value.len() as u16).to_le_bytes());
        if id == AV_FLAGS && value.len() == 4 {
            let v = u32::from_le_bytes(value.try_into().unwrap_or([0; 4])) | AV_FLAG_MIC;
            out.extend(v.to_le_bytes());
            flagged = true;
        } else {
            out.extend(value);
        }
    }
    if !flagged {
        out.extend(AV_FLAGS.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend(AV_FLAG_MIC.to_le_bytes());
    }
    out.extend([0u8; 4]);
    out
}

/// AV pairs up to the end marker (or the end of a truncated list).
fn av_pairs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let mut c = Cursor::new(data);
        let id = c.u16("AvId").ok()?;
        let len = c.u16("AvLen").ok()? as usize;
        let value = c.bytes(len, "AV value").ok()?;
        data = data.get(4 + len..).unwrap_or_default();
        Some((id, value))
    })
}

/// The fields of a CHALLENGE_MESSAGE this client uses.
struct Challenge {
    flags: u32,
    server_challenge: [u8; 8],
    target_info: Vec<u8>,
}

impl Challenge {
    fn decode(data: &[u8]) -> Result<Challenge, super::DecodeError> {
        let mut c = Cursor::new(data);
        if c.bytes(8, "NTLM signature")? != SIGNATURE || c.u32("MessageType")? != 2 {
            return Err(super::DecodeError::invalid("CHALLENGE_MESSAGE", 0, "not an NTLM challenge"));
        }
        c.skip(8, "TargetNameFields")?;
        let flags = c.u32("NegotiateFlags")?;
        let mut server_challenge = [0u8; 8];
        server_challenge.copy_from_slice(c.bytes(8, "ServerChallenge")?);
        c.skip(8, "Reserved")?;
        let len = c.u16("TargetInfoLen")? as usize;
        c.skip(2, "TargetInfoMaxLen")?;
        let offset = c.u32("TargetInfoBufferOffset")? as usize;
        let target_info = Cursor::new(data).at(offset, "TargetInfo")?.bytes(len, "TargetInfo")?.to_vec();
        Ok(Challenge { flags, server_challenge, target_info })
    }

    fn av_pair(&self, id: u16) -> Option<&[u8]> {
        av_pairs(&self.target_info).find(|(i, _)| *i == id).map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace().map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    /// MS-NLMP 4.2.4's target info: NetBIOS domain "Domain", NetBIOS server "Server".
    fn spec_target_info() -> Vec<u8> {
        let mut ti = vec![2, 0, 12, 0];
        ti.extend(utf16le("Domain"));
        ti.extend([1, 0, 12, 0]);
        ti.extend(utf16le("Server"));
        ti.extend([0, 0, 0, 0]);
        ti
    }

    const SPEC_FLAGS: u32 = 0xe28a_8233;

    #[test]
    fn ntowfv2_matches_ms_nlmp_4_2_4_1_1() {
        assert_eq!(
            nt_owf_v2("Password", "User", "Domain").to_vec(),
            hex("0c 86 8a 40 3b fd 7a 93 a3 00 1e f2 2e f0 2e 3f")
        );
    }

    #[test]
    fn ntlmv2_response_matches_ms_nlmp_4_2_4_2() {
        let owf = nt_owf_v2("Password", "User", "Domain");
        let sc = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        let (response, base) = ntlmv2_response(&owf, &sc, &[0xaa; 8], 0, &spec_target_info());
        assert_eq!(response[..16].to_vec(), hex("68 cd 0a b8 51 e5 1c 96 aa bc 92 7b eb ef 6a 1c"));
        assert_eq!(base.to_vec(), hex("8d e4 0c ca db c1 4a 82 f1 5c b0 ad 0d e9 5c a3"));
        let mut key = [0x55u8; 16];
        Rc4::new(&base).apply(&mut key);
        assert_eq!(key.to_vec(), hex("c5 da d2 54 4f c9 79 90 94 ce 1c e9 0b c9 d0 3e"));
    }

    fn spec_challenge(target_info: &[u8]) -> Vec<u8> {
        let mut ch = SIGNATURE.to_vec();
        ch.extend(2u32.to_le_bytes());
        ch.extend([12, 0, 12, 0, 56, 0, 0, 0]);
        ch.extend(SPEC_FLAGS.to_le_bytes());
        ch.extend([0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]);
        ch.extend([0; 8]);
        ch.extend((target_info.len() as u16).to_le_bytes());
        ch.extend((target_info.len() as u16).to_le_bytes());
        ch.extend(68u32.to_le_bytes());
        ch.extend(VERSION);
        ch.extend(utf16le("Server"));
        ch.extend(target_info);
        ch
    }

    fn field(msg: &[u8], at: usize) -> &[u8] {
        let len = u16::from_le_bytes([msg[at], msg[at + 1]]) as usize;
        let off = u32::from_le_bytes(msg[at + 4..at + 8].try_into().unwrap()) as usize;
        &msg[off..off + len]
    }

    #[test]
    fn authenticate_carries_the_spec_proof_and_key() {
        let client = NtlmClient::new("Domain\\User", "Password", "COMPUTER", true);
        let nonces = Nonces { client_challenge: [0xaa; 8], session_key: [0x55; 16] };
        let (msg, _) = client.authenticate(&spec_challenge(&spec_target_info()), nonces, 0).unwrap();
        assert_eq!(field(&msg, 20)[..16].to_vec(), hex("68 cd 0a b8 51 e5 1c 96 aa bc 92 7b eb ef 6a 1c"));
        assert_eq!(field(&msg, 28), utf16le("Domain"));
        assert_eq!(field(&msg, 36), utf16le("User"));
        assert_eq!(field(&msg, 44), utf16le("COMPUTER"));
        assert_eq!(field(&msg, 52).to_vec(), hex("c5 da d2 54 4f c9 79 90 94 ce 1c e9 0b c9 d0 3e"));
        // No server timestamp: an LMv2 response and no MIC.
        assert_eq!(field(&msg, 12)[..16].to_vec(), hex("86 c3 50 97 ac 9c ec 10 25 54 76 4a 57 cc cc 19"));
        assert_eq!(&msg[MIC_OFFSET..MIC_OFFSET + 16], &[0; 16]);
    }

    #[test]
    fn a_server_timestamp_brings_a_mic_and_a_null_lm_response() {
        let mut ti = vec![7, 0, 8, 0];
        ti.extend(0x01d0_0000_0000_0000u64.to_le_bytes());
        ti.extend(spec_target_info());
        let challenge = spec_challenge(&ti);
        let client = NtlmClient::new("Domain\\User", "Password", "COMPUTER", true);
        let nonces = Nonces { client_challenge: [0xaa; 8], session_key: [0x55; 16] };
        let (msg, _) = client.authenticate(&challenge, nonces, 99).unwrap();
        assert_eq!(field(&msg, 12), &[0; 24]);
        let nt = field(&msg, 20);
        assert_eq!(&nt[24..32], &0x01d0_0000_0000_0000u64.to_le_bytes());
        let mut zeroed = msg.clone();
        zeroed[MIC_OFFSET..MIC_OFFSET + 16].fill(0);
        let mic = hmac_md5(&[0x55; 16], &[client.negotiate(), &challenge, &zeroed]);
        assert_eq!(&msg[MIC_OFFSET..MIC_OFFSET + 16], &mic);
        // MsvAvFlags with the MIC bit sits before the end marker of the echoed target info.
        assert!(nt.windows(8).any(|w| w == [6, 0, 4, 0, 2, 0, 0, 0]));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_challenges_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let client = NtlmClient::new("d\\u", "p", "w", true);
            let nonces = Nonces { client_challenge: [1; 8], session_key: [2; 16] };
            let _ = client.authenticate(&data, nonces, 0);
            // The same bytes behind a valid header, so the field decoders run on them.
            let mut framed = spec_challenge(&data);
            let _ = client.authenticate(&framed, nonces, 0);
            framed.truncate(data.len() % framed.len());
            let _ = client.authenticate(&framed, nonces, 0);
        }
    }

    #[test]
    fn weak_or_malformed_challenges_fail_as_auth_errors() {
        let client = NtlmClient::new("u", "p", "W", true);
        let nonces = Nonces { client_challenge: [0; 8], session_key: [0; 16] };
        let mut weak = spec_challenge(&spec_target_info());
        weak[20..24].copy_from_slice(&(SPEC_FLAGS & !flags::EXTENDED_SESSION_SECURITY).to_le_bytes());
        assert_eq!(client.authenticate(&weak, nonces, 0).unwrap_err().category, Category::AuthFailed);
        let full = spec_challenge(&spec_target_info());
        for cut in [0, 7, 20, 40, full.len() - 1] {
            assert_eq!(client.authenticate(&full[..cut], nonces, 0).unwrap_err().category, Category::AuthFailed);
        }
    }
}
