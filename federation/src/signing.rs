//! Hospital-held identities: the signing key a hospital made itself (the private key of its mTLS
//! certificate, ECDSA P-256), its public key and fingerprint, and statements signed with it.
//!
//! Guarantees:
//! - A private key is read from the hospital's own key file and never leaves this process; the
//!   aggregator relays signed statements and cannot make one in a hospital's name.
//! - A [`Fingerprint`] is SHA-256 of the key's DER `SubjectPublicKeyInfo`, the usual public key
//!   pin (`openssl pkey -pubout -outform DER | sha256sum` gives the same hex).
//! - Every signature covers a domain string and the statement's exact bytes; a statement names
//!   its federation, session, session kind and CRS, so one signed for another round, federation
//!   or step never verifies as this one (the caller compares those fields).

use core::fmt;
use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

use crate::error::{FederationError, Result, TrustError};
use crate::protocol::NodeId;

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` before its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// What every signature signs before the statement's bytes.
const DOMAIN: &[u8] = b"fedcare/statement/v1\0";

/// A public signing key: the uncompressed P-256 point (65 bytes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey(#[serde(with = "serde_bytes")] Vec<u8>);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(&P256_SPKI_PREFIX);
        context.update(&self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(context.finish().as_ref());
        Fingerprint(out)
    }

    /// Whether `signature` signs `message` under this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let signed = [DOMAIN, message].concat();
        ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.0).verify(&signed, signature).is_ok()
    }
}

/// SHA-256 of a public key's DER `SubjectPublicKeyInfo`, written `sha256:<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::str::FromStr for Fingerprint {
    type Err = String;

    fn from_str(text: &str) -> core::result::Result<Self, String> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        let bad = || format!("{text:?} is not a key fingerprint (sha256: and 64 hex digits)");
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> core::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> core::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A hospital's private signing key (the key of its mTLS certificate).
pub struct SigningKey {
    pair: EcdsaKeyPair,
    random: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public_key().fingerprint())
    }
}

impl SigningKey {
    /// The key in a PEM file (PKCS#8, ECDSA P-256, as `fedcare keygen` and `fedcare certs` write).
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let pem = std::fs::read_to_string(path)
            .map_err(|source| FederationError::Read { path: path.to_path_buf(), source })?;
        Self::from_pem(&pem).map_err(|why| FederationError::Tls(format!("{}: {why}", path.display())))
    }

    /// The key in PEM text.
    pub fn from_pem(pem: &str) -> core::result::Result<Self, String> {
        let key = rcgen::KeyPair::from_pem(pem).map_err(|e| format!("not a private key: {e}"))?;
        let random = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &random)
            .map_err(|e| format!("not an ECDSA P-256 key ({e}); make one with `fedcare keygen`"))?;
        Ok(Self { pair, random })
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.pair.public_key().as_ref().to_vec())
    }

    /// A signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signed = [DOMAIN, message].concat();
        // ring fails only when the system's random source fails, which it does not on a
        // working machine; an empty signature then never verifies.
        self.pair.sign(&self.random, &signed).map(|s| s.as_ref().to_vec()).unwrap_or_default()
    }
}

/// The fingerprint of the public key in a PEM certificate.
pub fn certificate_fingerprint(pem: &[u8]) -> core::result::Result<Fingerprint, String> {
    let (_, der) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der.contents).map_err(|e| format!("unreadable: {e}"))?;
    Ok(PublicKey(cert.public_key().subject_public_key.data.to_vec()).fingerprint())
}

/// A statement's bytes, signed by the node it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// Who signed.
    pub signer: NodeId,
    /// Its public key (checked against a roster's fingerprint by the receiver).
    pub public_key: PublicKey,
    /// The statement, as its signer encoded it.
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
    /// The signature of `message`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl Signed {
    /// `message` signed by `signer` with `key`.
    pub fn new(signer: NodeId, key: &SigningKey, message: Vec<u8>) -> Self {
        Self { signer, public_key: key.public_key(), signature: key.sign(&message), message }
    }

    /// Whether the signature verifies under the key it carries (the roster check is the
    /// receiver's).
    pub fn verify(&self) -> core::result::Result<(), TrustError> {
        if self.public_key.verifies(&self.message, &self.signature) {
            Ok(())
        } else {
            Err(TrustError::BadSignature { signer: self.signer.clone() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_unchanged_and_fingerprints_are_the_spki_pin() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let key = SigningKey::from_pem(&pair.serialize_pem()).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&pair);
        let pin: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &spki).as_ref().try_into().unwrap();
        assert_eq!(key.public_key().fingerprint(), Fingerprint(pin));
        let fingerprint = key.public_key().fingerprint();
        assert_eq!(fingerprint.to_string().parse::<Fingerprint>().unwrap(), fingerprint);
        assert!("sha256:00".parse::<Fingerprint>().is_err());

        let signed = Signed::new(NodeId::new("a").unwrap(), &key, b"round 3".to_vec());
        signed.verify().unwrap();
        let mut changed = signed.clone();
        changed.message[0] ^= 1;
        assert!(changed.verify().is_err());
        let other = SigningKey::from_pem(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let mut foreign_key = signed.clone();
        foreign_key.public_key = other.public_key();
        assert!(foreign_key.verify().is_err());
        assert!(SigningKey::from_pem("not a key").is_err());
    }
}
