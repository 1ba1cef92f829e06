//! Framing of WS-Man message encryption (MS-WSMV 2.2.9.1).
//!
//! With NTLM, Negotiate or Kerberos over plain HTTP, Windows seals every SOAP body with the
//! security context and sends it as a two-part `multipart/encrypted` body:
//!
//! ```text
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n
//! \tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=N\r\n
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/octet-stream\r\n
//! <u32 LE signature length><signature><sealed data>--Encrypted Boundary--\r\n
//! ```
//!
//! These are pure functions over bytes: sealing itself belongs to the authentication layer.
//! [`build_body`] produces exactly what Windows, pywinrm and pypsrp send; [`parse_body`] accepts
//! what they send plus the variations seen in the wild (`-- Encrypted Boundary`, headers without
//! the leading tab, LF line ends).

use std::fmt;

/// The MIME boundary every implementation uses.
pub const BOUNDARY: &str = "Encrypted Boundary";

/// Which security package sealed the body; named by the `protocol` parameter of the
/// outer Content-Type and the Content-Type of the first part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealProtocol {
    /// NTLM, or Negotiate (SPNEGO) whatever mechanism it chose.
    Spnego,
    /// Kerberos selected directly (not through SPNEGO).
    Kerberos,
    /// CredSSP (framed here for completeness; cimrun does not authenticate with it).
    CredSsp,
}

impl SealProtocol {
    /// The MIME type naming the protocol, e.g. `application/HTTP-SPNEGO-session-encrypted`.
    pub fn mime_type(self) -> &'static str {
        match self {
            SealProtocol::Spnego => "application/HTTP-SPNEGO-session-encrypted",
            SealProtocol::Kerberos => "application/HTTP-Kerberos-session-encrypted",
            SealProtocol::CredSsp => "application/HTTP-CredSSP-session-encrypted",
        }
    }

    /// The protocol a MIME type names, compared case-insensitively.
    pub fn from_mime_type(mime: &str) -> Option<SealProtocol> {
        [
            SealProtocol::Spnego,
            SealProtocol::Kerberos,
            SealProtocol::CredSsp,
        ]
        .into_iter()
        .find(|p| p.mime_type().eq_ignore_ascii_case(mime.trim()))
    }

    /// The outer HTTP Content-Type of a sealed body.
    pub fn content_type(self) -> String {
        format!(
            "multipart/encrypted;protocol=\"{}\";boundary=\"{BOUNDARY}\"",
            self.mime_type()
        )
    }
}

impl fmt::Display for SealProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mime_type())
    }
}

/// Why an encrypted body could not be framed or unframed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("encrypted body does not start with the \"{BOUNDARY}\" boundary")]
    MissingBoundary,
    #[error("encrypted body has no closing \"{BOUNDARY}--\" boundary")]
    MissingEndBoundary,
    #[error("encrypted body has no second part")]
    MissingDataPart,
    #[error("encrypted body names no protocol Content-Type in its first part")]
    MissingProtocol,
    #[error("encrypted body names an unknown protocol {0:?}")]
    UnknownProtocol(String),
    #[error("encrypted body has no OriginalContent header")]
    MissingOriginalContent,
    #[error("OriginalContent has no valid Length: {0:?}")]
    BadLength(String),
    #[error("encrypted payload is {0} bytes, too short for its signature length field")]
    TruncatedPayload(usize),
    #[error("signature length {declared} exceeds the {available} bytes of the payload")]
    SignatureOverrun { declared: u32, available: usize },
    #[error("signature of {0} bytes is too long to frame")]
    SignatureTooLong(usize),
    #[error("decrypted body is {actual} bytes but OriginalContent declared {declared}")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("the encrypted body has trailing data after its closing boundary")]
    TrailingData,
}

impl From<FramingError> for crate::protocol::Error {
    fn from(e: FramingError) -> Self {
        crate::protocol::Error::new(crate::protocol::Category::ProtocolError, e.to_string())
    }
}

/// Builds a sealed body byte-exact as Windows and pypsrp do.
///
/// `signature` and `sealed` are what the security context produced for the body (the token and
/// the encrypted data buffers); `original_len` is the length of the plaintext and
/// `original_type` its Content-Type (`application/soap+xml;charset=UTF-8`).
pub fn build_body(
    protocol: SealProtocol,
    original_type: &str,
    original_len: usize,
    signature: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>, FramingError> {
    let sig_len = u32::try_from(signature.len())
        .map_err(|_| FramingError::SignatureTooLong(signature.len()))?;
    let head = format!(
        "--{BOUNDARY}\r\n\tContent-Type: {}\r\n\tOriginalContent: type={original_type};Length={original_len}\r\n\
         --{BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n",
        protocol.mime_type()
    );
    let tail = format!("--{BOUNDARY}--\r\n");
    let mut body = Vec::with_capacity(head.len() + 4 + signature.len() + sealed.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(&sig_len.to_le_bytes());
    body.extend_from_slice(signature);
    body.extend_from_slice(sealed);
    body.extend_from_slice(tail.as_bytes());
    Ok(body)
}

/// The parts of a sealed body, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBody<'a> {
    pub protocol: SealProtocol,
    /// Content-Type of the plaintext (`application/soap+xml;charset=UTF-8`), without `Length`.
    pub original_type: String,
    /// Length of the plaintext as declared by the sender.
    pub original_len: usize,
    /// The security token (NTLM: 16-byte signature; Kerberos: the wrap token header).
    pub signature: &'a [u8],
    /// The encrypted data.
    pub sealed: &'a [u8],
    /// Where `sealed` starts in the body it was parsed from, so that a mutable copy of the
    /// body can be unsealed in place.
    pub sealed_at: usize,
}

impl SealedBody<'_> {
    /// Checks the decrypted plaintext against the declared length.
    pub fn check_length(&self, plaintext: &[u8]) -> Result<(), FramingError> {
        check_length(self.original_len, plaintext.len())
    }

    /// Where the sealed data sits in the body these parts were parsed from.
    pub fn sealed_range(&self) -> std::ops::Range<usize> {
        self.sealed_at..self.sealed_at + self.sealed.len()
    }
}

/// Checks the length of a decrypted plaintext against the declared one.
pub fn check_length(declared: usize, actual: usize) -> Result<(), FramingError> {
    if actual == declared {
        Ok(())
    } else {
        Err(FramingError::LengthMismatch { declared, actual })
    }
}

/// Whether an HTTP Content-Type announces a sealed body.
pub fn is_encrypted_content_type(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("multipart/encrypted")
}

/// Splits a sealed body into its parts. Linear in the body length; never panics.
pub fn parse_body(body: &[u8]) -> Result<SealedBody<'_>, FramingError> {
    let mut rest = trim_start(body);
    rest = strip_boundary_line(rest).ok_or(FramingError::MissingBoundary)?;

    // First part: text headers up to the second boundary.
    let mut protocol = None;
    let mut original = None;
    loop {
        if let Some(after) = strip_boundary_line(rest) {
            rest = after;
            break;
        }
        let (line, after) = split_line(rest).ok_or(FramingError::MissingDataPart)?;
        rest = after;
        if let Some(value) = header_value(line, "content-type") {
            protocol = Some(value);
        } else if let Some(value) = header_value(line, "originalcontent") {
            original = Some(value);
        }
    }
    let protocol = protocol.ok_or(FramingError::MissingProtocol)?;
    let protocol =
        SealProtocol::from_mime_type(&protocol).ok_or(FramingError::UnknownProtocol(protocol))?;
    let (original_type, original_len) =
        parse_original_content(&original.ok_or(FramingError::MissingOriginalContent)?)?;

    // Second part: its Content-Type line, then binary data with no blank line before it.
    while let Some((line, after)) = split_line(rest) {
        if header_value(line, "content-type").is_none() {
            break;
        }
        rest = after;
    }
    // Every step above kept a suffix of the body, so this is where the data part starts.
    let payload_at = body.len() - rest.len();
    let end = find_end_boundary(rest)?;
    let (mut payload, tail) = (
        rest.get(..end.start).unwrap_or_default(),
        rest.get(end.end..).unwrap_or_default(),
    );
    if !trim_start(tail).is_empty() {
        return Err(FramingError::TrailingData);
    }

    let (len_field, after) = payload
        .split_first_chunk::<4>()
        .ok_or(FramingError::TruncatedPayload(payload.len()))?;
    let declared = u32::from_le_bytes(*len_field);
    payload = after;
    let sig_len = usize::try_from(declared).unwrap_or(usize::MAX);
    if sig_len > payload.len() {
        return Err(FramingError::SignatureOverrun {
            declared,
            available: payload.len(),
        });
    }
    let (signature, mut sealed) = payload.split_at(sig_len);
    // Some senders end the data part with a line break before the closing boundary; it is
    // framing only when removing it makes the data exactly as long as declared (stream ciphers
    // keep the length), since a sealed byte sequence may itself end in CR LF.
    for eol in [&b"\r\n"[..], b"\n"] {
        if original_len.checked_add(eol.len()) == Some(sealed.len()) && sealed.ends_with(eol) {
            sealed = sealed.get(..original_len).unwrap_or(sealed);
            break;
        }
    }
    Ok(SealedBody {
        protocol,
        original_type,
        original_len,
        signature,
        sealed,
        sealed_at: payload_at + 4 + sig_len,
    })
}

/// `type=application/soap+xml;charset=UTF-8;Length=123` → (`application/soap+xml;charset=UTF-8`, 123).
fn parse_original_content(value: &str) -> Result<(String, usize), FramingError> {
    let mut media = Vec::new();
    let mut length = None;
    for param in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = param
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .unwrap_or((param, ""));
        if key.eq_ignore_ascii_case("length") {
            length = Some(
                val.parse::<usize>()
                    .map_err(|_| FramingError::BadLength(val.to_string()))?,
            );
        } else if key.eq_ignore_ascii_case("type") {
            media.insert(0, val.to_string());
        } else {
            media.push(param.to_string());
        }
    }
    let length = length.ok_or_else(|| FramingError::BadLength(value.to_string()))?;
    Ok((media.join(";"), length))
}

fn trim_start(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !first.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    b
}

/// Strips `--Encrypted Boundary` (or `-- Encrypted Boundary`) and its line end, not the closing
/// `--Encrypted Boundary--`.
fn strip_boundary_line(b: &[u8]) -> Option<&[u8]> {
    let after = strip_boundary(trim_start_inline(b))?;
    let after = trim_start_inline(after);
    if after.starts_with(b"\r\n") {
        Some(&after[2..])
    } else if after.starts_with(b"\n") {
        Some(&after[1..])
    } else {
        None
    }
}

/// Strips `--`, an optional space and the boundary name.
fn strip_boundary(b: &[u8]) -> Option<&[u8]> {
    let b = b.strip_prefix(b"--")?;
    let b = b.strip_prefix(b" ").unwrap_or(b);
    b.strip_prefix(BOUNDARY.as_bytes())
}

fn trim_start_inline(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    b
}

/// Splits off one text line (without its CR LF or LF); `None` when no line end follows.
fn split_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let nl = b.iter().position(|&c| c == b'\n')?;
    let line = &b[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, &b[nl + 1..]))
}

/// The value of a `Name: value` line when its name matches (case-insensitively).
fn header_value(line: &[u8], name: &str) -> Option<String> {
    let line = std::str::from_utf8(line).ok()?.trim();
    let (key, value) = line.split_once(':')?;
    key.trim()
        .eq_ignore_ascii_case(name)
        .then(|| value.trim().to_string())
}

/// The span of the last closing boundary (`--Encrypted Boundary--`, with or without a space
/// after the leading dashes). The last one, because sealed data may contain any bytes.
fn find_end_boundary(b: &[u8]) -> Result<std::ops::Range<usize>, FramingError> {
    // Search for the part both spellings share, from the end, then look at what precedes it:
    // a body is some 100 KiB and the boundary sits at its very end.
    let core = format!("{BOUNDARY}--");
    let finder = memchr::memmem::FinderRev::new(core.as_bytes());
    let mut end = b.len();
    while let Some(at) = b.get(..end).and_then(|h| finder.rfind(h)) {
        let before = b.get(..at).unwrap_or(&[]);
        let dashes = if before.ends_with(b"-- ") {
            3
        } else if before.ends_with(b"--") {
            2
        } else {
            0
        };
        if dashes > 0 {
            return Ok(at - dashes..at + core.len());
        }
        end = at;
    }
    Err(FramingError::MissingEndBoundary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SOAP: &str = "application/soap+xml;charset=UTF-8";

    #[test]
    fn builds_the_windows_bytes() {
        let body = build_body(
            SealProtocol::Spnego,
            SOAP,
            9,
            b"SIGNATURE-16BYTE",
            b"encrypted",
        )
        .unwrap();
        let mut expected = b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\
\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=9\r\n--Encrypted Boundary\r\n\
\tContent-Type: application/octet-stream\r\n\x10\x00\x00\x00"
            .to_vec();
        expected.extend_from_slice(b"SIGNATURE-16BYTEencrypted--Encrypted Boundary--\r\n");
        assert_eq!(
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(body, expected);
    }

    #[test]
    fn content_type_names_the_protocol() {
        assert_eq!(
            SealProtocol::Spnego.content_type(),
            "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\""
        );
        assert_eq!(
            SealProtocol::Kerberos.content_type(),
            "multipart/encrypted;protocol=\"application/HTTP-Kerberos-session-encrypted\";boundary=\"Encrypted Boundary\""
        );
        assert!(is_encrypted_content_type(
            &SealProtocol::Kerberos.content_type()
        ));
        assert!(is_encrypted_content_type("Multipart/Encrypted; boundary=x"));
        assert!(!is_encrypted_content_type(
            "application/soap+xml;charset=UTF-8"
        ));
    }

    #[test]
    fn parses_loose_framing() {
        // A space after the dashes, no tabs and LF line ends, as some senders and proxies produce.
        let mut body =
            b"-- Encrypted Boundary\nContent-Type: application/HTTP-Kerberos-session-encrypted\n\
OriginalContent: type=application/soap+xml;charset=UTF-16;Length=4\n-- Encrypted Boundary\n\
Content-Type: application/octet-stream\n\x02\x00\x00\x00"
                .to_vec();
        body.extend_from_slice(b"SGdata\r\n-- Encrypted Boundary--\n");
        let p = parse_body(&body).unwrap();
        assert_eq!(p.protocol, SealProtocol::Kerberos);
        assert_eq!(p.original_type, "application/soap+xml;charset=UTF-16");
        assert_eq!(p.original_len, 4);
        assert_eq!(p.signature, b"SG");
        assert_eq!(p.sealed, b"data");
        // The data's place in the body, found again where the body is copied.
        assert_eq!(&body[p.sealed_range()], b"data");
        assert_eq!(p.sealed_range().start, body.len() - b"data\r\n-- Encrypted Boundary--\n".len());
    }

    #[test]
    fn keeps_a_trailing_crlf_that_belongs_to_the_data() {
        let body = build_body(SealProtocol::Spnego, SOAP, 6, b"S", b"data\r\n").unwrap();
        let p = parse_body(&body).unwrap();
        assert_eq!(p.sealed, b"data\r\n");
    }

    #[test]
    fn rejects_bad_framing_precisely() {
        let good = build_body(SealProtocol::Spnego, SOAP, 4, b"SIG", b"data").unwrap();
        let text = String::from_utf8(good.clone()).unwrap();
        let cases: Vec<(Vec<u8>, FramingError)> = vec![
            (b"<s:Envelope/>".to_vec(), FramingError::MissingBoundary),
            (
                text.replace("--Encrypted Boundary--", "").into_bytes(),
                FramingError::MissingEndBoundary,
            ),
            (
                text.replace(";Length=4", "").into_bytes(),
                FramingError::BadLength("type=application/soap+xml;charset=UTF-8".into()),
            ),
            (
                text.replace("Length=4", "Length=-1").into_bytes(),
                FramingError::BadLength("-1".into()),
            ),
            (
                text.replace("\tOriginalContent", "\tX-Other").into_bytes(),
                FramingError::MissingOriginalContent,
            ),
            (
                text.replace("HTTP-SPNEGO", "HTTP-Foo").into_bytes(),
                FramingError::UnknownProtocol("application/HTTP-Foo-session-encrypted".into()),
            ),
            (
                text.replace("\x03\x00\x00\x00", "\x09\x00\x00\x00")
                    .into_bytes(),
                FramingError::SignatureOverrun {
                    declared: 9,
                    available: 7,
                },
            ),
            (
                text.replace("\x03\x00\x00\x00SIGdata", "\x03\x00")
                    .into_bytes(),
                FramingError::TruncatedPayload(2),
            ),
            ([&good[..], b"junk"].concat(), FramingError::TrailingData),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse_body(&body),
                Err(want),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn length_check() {
        let body = build_body(SealProtocol::Spnego, SOAP, 5, b"S", b"abcd").unwrap();
        let p = parse_body(&body).unwrap();
        assert_eq!(
            p.check_length(b"abcd"),
            Err(FramingError::LengthMismatch {
                declared: 5,
                actual: 4
            })
        );
        assert_eq!(p.check_length(b"abcde"), Ok(()));
    }

    fn protocol() -> impl Strategy<Value = SealProtocol> {
        prop_oneof![
            Just(SealProtocol::Spnego),
            Just(SealProtocol::Kerberos),
            Just(SealProtocol::CredSsp)
        ]
    }

    /// The end boundary found by trying every offset from the end, both spellings.
    fn naive_end_boundary(b: &[u8]) -> Option<std::ops::Range<usize>> {
        let last = |needle: &[u8]| (0..=b.len().checked_sub(needle.len())?).rev().find(|&i| b[i..].starts_with(needle));
        let tight = format!("--{BOUNDARY}--");
        let spaced = format!("-- {BOUNDARY}--");
        [tight.as_bytes(), spaced.as_bytes()]
            .into_iter()
            .filter_map(|n| last(n).map(|s| s..s + n.len()))
            .max_by_key(|r| r.start)
    }

    proptest! {
        #[test]
        fn end_boundary_is_the_last_of_either_spelling(parts in proptest::collection::vec(prop_oneof![
            Just("--Encrypted Boundary--".to_string()), Just("-- Encrypted Boundary--".to_string()),
            Just("Encrypted Boundary--".to_string()), Just("-".to_string()), Just(" ".to_string()),
            "[a-z\r\n]{0,5}"
        ], 0..8)) {
            let body = parts.concat();
            prop_assert_eq!(find_end_boundary(body.as_bytes()).ok(), naive_end_boundary(body.as_bytes()));
        }

        #[test]
        fn round_trips(
            protocol in protocol(),
            signature in proptest::collection::vec(any::<u8>(), 0..64),
            sealed in proptest::collection::vec(any::<u8>(), 0..2048),
            charset in "(UTF-8|UTF-16|utf-16le)",
        ) {
            let original_type = format!("application/soap+xml;charset={charset}");
            let body = build_body(protocol, &original_type, sealed.len(), &signature, &sealed).unwrap();
            let p = parse_body(&body).unwrap();
            prop_assert_eq!(&body[p.sealed_range()], &sealed[..]);
            prop_assert_eq!(p.protocol, protocol);
            prop_assert_eq!(p.original_type, original_type);
            prop_assert_eq!(p.original_len, sealed.len());
            prop_assert_eq!(p.signature, &signature[..]);
            prop_assert_eq!(p.sealed, &sealed[..]);
        }

        #[test]
        fn round_trips_data_that_contains_the_boundary(
            prefix in proptest::collection::vec(any::<u8>(), 0..64),
            suffix in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let sealed = [&prefix[..], b"--Encrypted Boundary--\r\n--Encrypted Boundary\r\n", &suffix[..]].concat();
            let body = build_body(SealProtocol::Spnego, SOAP, sealed.len(), b"0123456789abcdef", &sealed).unwrap();
            let p = parse_body(&body).unwrap();
            prop_assert_eq!(p.sealed, &sealed[..]);
            prop_assert_eq!(&body[p.sealed_range()], &sealed[..]);
        }

        #[test]
        fn junk_never_panics(junk in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(p) = parse_body(&junk) {
                prop_assert_eq!(junk.get(p.sealed_range()), Some(p.sealed));
            }
        }

        #[test]
        fn mutated_bodies_never_panic(
            sealed in proptest::collection::vec(any::<u8>(), 0..256),
            cut in any::<usize>(),
            flip in any::<(usize, u8)>(),
        ) {
            let mut body = build_body(SealProtocol::Spnego, SOAP, sealed.len(), b"sig", &sealed).unwrap();
            let n = body.len();
            body[flip.0 % n] ^= flip.1;
            let _ = parse_body(&body);
            let _ = parse_body(&body[..cut % n]);
        }
    }
}
