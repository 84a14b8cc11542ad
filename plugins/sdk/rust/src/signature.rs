//! Checking a provider's signature with the host's crypto (native, so no crypto
//! library is linked into the plugin), the encodings signatures come in, and how
//! old a signed timestamp is.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::{crypto, PluginError};

/// Whether `claimed` is the HMAC-SHA256 of `data` under `key`, compared in time
/// that does not depend on where they differ.
pub fn hmac_sha256_matches(key: &[u8], data: &[u8], claimed: &[u8]) -> bool {
    crypto::constant_time_eq(&crypto::hmac_sha256(key, data), claimed)
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// The bytes of hex `text` (either case); `None` unless it is an even number of
/// hex digits and nothing else.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Standard base64 (RFC 4648 alphabet, padded) of `bytes`.
pub fn base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// The bytes of standard, padded base64 `text`; `None` when it is anything else.
pub fn from_base64(text: &str) -> Option<Vec<u8>> {
    BASE64.decode(text).ok()
}

/// The values of the entries of `list` (space-separated `<version>,<value>`, as
/// Standard Webhooks' `webhook-signature` sends them, several during a key
/// rotation) whose version is `version`, in order. Empty entries, entries without a
/// comma and entries of other versions are skipped: a receiver checks each value it
/// can and accepts the delivery when any one matches.
pub fn signatures_of_version<'a>(
    list: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    list.split(' ').filter_map(move |entry| {
        let (entry_version, value) = entry.split_once(',')?;
        (entry_version == version).then_some(value)
    })
}

/// How many seconds the Unix time `timestamp` (as providers send it: ASCII digits)
/// is from now, earlier or later; `None` unless it is 1 to 15 digits. Compare it
/// with the provider's tolerance to refuse replays of old deliveries.
pub fn seconds_from_now(timestamp: &str) -> Option<u64> {
    if timestamp.is_empty()
        || timestamp.len() > 15
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let sent: u64 = timestamp.parse().ok()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Some(now.abs_diff(sent))
}

/// Refuses a signed Unix-seconds `timestamp` (the text of header `header`) that
/// is not digits or is more than `tolerance_seconds` from now, either way:
/// `unauthorized`, "malformed <header> header" or "<header> is outside the
/// <n> s tolerance". Check it with the signature, so a captured delivery cannot
/// be replayed later.
pub fn check_timestamp(
    header: &str,
    timestamp: &str,
    tolerance_seconds: u64,
) -> Result<(), PluginError> {
    let skew = seconds_from_now(timestamp)
        .ok_or_else(|| PluginError::Unauthorized(format!("malformed {header} header")))?;
    if skew > tolerance_seconds {
        return Err(PluginError::Unauthorized(format!(
            "{header} is outside the {tolerance_seconds} s tolerance"
        )));
    }
    Ok(())
}

/// How many milliseconds the Unix time `timestamp_ms` (milliseconds since the
/// epoch, as some providers put it in the signed body: Linear's `webhookTimestamp`)
/// is from now, earlier or later.
pub fn milliseconds_from_now(timestamp_ms: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    now.abs_diff(timestamp_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(hex(&[0x00, 0x9f, 0xff]), "009fff");
        assert_eq!(from_hex("009FfF"), Some(vec![0x00, 0x9f, 0xff]));
        assert_eq!(from_hex(""), Some(vec![]));
        for bad in ["0", "0g", "+1", " 01", "éé"] {
            assert_eq!(from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn base64_is_the_standard_padded_form() {
        assert_eq!(base64(b"hi?"), "aGk/");
        assert_eq!(from_base64("aGk/"), Some(b"hi?".to_vec()));
        assert_eq!(from_base64("aGk_"), None);
        assert_eq!(from_base64("aGk"), None);
    }

    #[test]
    fn signatures_of_a_version_are_picked_from_the_list() {
        let list = "v1,a  v1a,b v2,c v1,d nocomma v1,";
        assert_eq!(
            signatures_of_version(list, "v1").collect::<Vec<_>>(),
            ["a", "d", ""]
        );
        assert_eq!(
            signatures_of_version(list, "v1a").collect::<Vec<_>>(),
            ["b"]
        );
        assert_eq!(signatures_of_version("", "v1").count(), 0);
    }

    #[test]
    fn a_timestamp_is_digits_and_its_skew_goes_either_way() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(seconds_from_now(&(now - 1000).to_string()).unwrap() >= 1000);
        assert!(seconds_from_now(&(now + 1000).to_string()).unwrap() >= 999);
        for bad in ["", "-1", "1.5", " 1", "1234567890123456"] {
            assert_eq!(seconds_from_now(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_millisecond_timestamp_skew_goes_either_way() {
        let now = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        assert!(milliseconds_from_now(now - 61_000) >= 61_000);
        assert!(milliseconds_from_now(now + 61_000) >= 60_000);
        assert!(milliseconds_from_now(0) > 1_000_000_000_000);
    }
}
