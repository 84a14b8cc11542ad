//! The cryptography behind the contract's `crypto` interface, as plain functions
//! over bytes: the per-version `crypto::Host` impls (`call_state`,
//! `bindings::v0_1_0`) only forward here. Nothing here panics on what a plugin
//! passes: keys of any length are fine for HMAC, and an Ed25519 key or signature
//! that is malformed or of the wrong length verifies nothing.

use ed25519_dalek::{Signature, VerifyingKey};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

// `new_from_slice` fails only for MACs with a fixed key size, which HMAC is not.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn hmac_sha512(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Equal content and length, in time that depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether `signature` is `public_key`'s Ed25519 signature of `message`.
/// Strict (`verify_strict`): besides a non-canonical `S`, which every mode
/// refuses, it refuses small-order keys and `R`s, so that no signature verifies
/// under a key with no secret behind it and none can be reshaped into another
/// valid one. Everything here is public, so verifying needs no constant time.
pub fn ed25519_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Ok(public_key), Ok(signature)) = (
        <&[u8; 32]>::try_from(public_key),
        <&[u8; 64]>::try_from(signature),
    ) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032, section 7.1, TEST 1: an empty message.
    const RFC8032_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8032_SIG: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
                               5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    fn bytes(text: &str) -> Vec<u8> {
        hex::decode(text).unwrap()
    }

    #[test]
    fn ed25519_accepts_rfc_8032_test_1() {
        assert!(ed25519_verify(
            &bytes(RFC8032_KEY),
            b"",
            &bytes(RFC8032_SIG)
        ));
    }

    #[test]
    fn ed25519_refuses_another_message_key_or_signature() {
        let key = bytes(RFC8032_KEY);
        let sig = bytes(RFC8032_SIG);
        assert!(!ed25519_verify(&key, b"x", &sig));
        let mut other_sig = sig.clone();
        other_sig[0] ^= 1;
        assert!(!ed25519_verify(&key, b"", &other_sig));
        let mut other_key = key.clone();
        other_key[0] ^= 1;
        assert!(!ed25519_verify(&other_key, b"", &sig));
    }

    #[test]
    fn ed25519_refuses_malformed_input_without_panicking() {
        let key = bytes(RFC8032_KEY);
        let sig = bytes(RFC8032_SIG);
        assert!(!ed25519_verify(&key[..31], b"", &sig));
        assert!(!ed25519_verify(&[key.clone(), vec![0]].concat(), b"", &sig));
        assert!(!ed25519_verify(&key, b"", &sig[..63]));
        assert!(!ed25519_verify(&key, b"", &[sig.clone(), vec![0]].concat()));
        assert!(!ed25519_verify(&[], b"", &[]));
        // Not a point on the curve.
        assert!(!ed25519_verify(&[0xff; 32], b"", &sig));
        // The identity, a small-order key: with S = 0 and R the identity it would
        // verify any message under a non-strict check.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut forged = [0u8; 64];
        forged[0] = 1;
        assert!(!ed25519_verify(&identity, b"anything", &forged));
        // S not reduced modulo the group order.
        let mut high_s = sig.clone();
        high_s[63] = 0xff;
        assert!(!ed25519_verify(&key, b"", &high_s));
    }

    #[test]
    fn hmacs_match_rfc_2202_and_4231_case_2() {
        let key = b"Jefe";
        let data = b"what do ya want for nothing?";
        assert_eq!(
            hex::encode(hmac_sha1(key, data)),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex::encode(hmac_sha256(key, data)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha512(key, data)),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
    }

    #[test]
    fn hmac_keys_longer_than_a_block_are_hashed_first() {
        // RFC 4231 case 6 (SHA-512) and RFC 2202 case 6 (SHA-1): 131- and 80-byte keys.
        let data = b"Test Using Larger Than Block-Size Key - Hash Key First";
        assert_eq!(
            hex::encode(hmac_sha512(&[0xaa; 131], data)),
            "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
             6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"
        );
        assert_eq!(
            hex::encode(hmac_sha1(&[0xaa; 80], data)),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
