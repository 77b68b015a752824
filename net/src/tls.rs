//! mTLS for every connection: hospital-held identities (a hospital makes its own key and a
//! certificate request, [`generate_identity`]; the consortium's CA signs the request,
//! [`sign_request`]; the private key never leaves the hospital), a development PKI made with
//! rcgen for `simulate` and tests (a "provisioning kit" holding every key), the server and client
//! TLS configurations, and the node id read from a client certificate.
//!
//! There is no plaintext mode. The aggregator requires a client certificate signed by the
//! federation's CA; a hospital's id is the first DNS name of its certificate (falling back to the
//! common name). Private keys are created with mode 0600 (never readable by others, not even for
//! a moment) and never overwritten; none is committed: tests and `fedcare simulate` generate
//! their own at run time.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error::{FederationError, Result};
use crate::signing::{Fingerprint, Signer as _, SigningKey, certificate_fingerprint};
use fedcare_protocol::NodeId;
use fedcare_protocol::roster::Consortium;

/// File names inside a PKI directory.
pub mod files {
    /// The CA certificate (public: every party gets it).
    pub const CA_CERT: &str = "ca.pem";
    /// The CA's private key (keep it offline).
    pub const CA_KEY: &str = "ca.key";
    /// The aggregator's certificate.
    pub const SERVER_CERT: &str = "aggregator.pem";
    /// The aggregator's private key.
    pub const SERVER_KEY: &str = "aggregator.key";
    /// The consortium's roster: every hospital's name and key fingerprint, as TOML.
    pub const MEMBERS: &str = "members.toml";
}

/// Installs rustls's ring crypto provider for the process (idempotent).
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn tls_error(error: impl core::fmt::Display) -> FederationError {
    FederationError::Tls(error.to_string())
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> FederationError + '_ {
    move |source| FederationError::Write { path: path.to_path_buf(), source }
}

/// Writes a private key (or any secret): created new (an existing file is never overwritten)
/// with mode 0600.
pub fn write_private(path: &Path, pem: &str) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => FederationError::KeyExists { path: path.to_path_buf() },
        _ => FederationError::Write { path: path.to_path_buf(), source },
    })?;
    file.write_all(pem.as_bytes()).and_then(|()| file.sync_all()).map_err(write_error(path))
}

fn write_public(path: &Path, pem: &str) -> Result<()> {
    fs::write(path, pem).map_err(write_error(path))
}

/// Paths of one party's certificate and key inside a PKI directory.
pub fn party_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")))
}

/// A hospital's own identity: writes `<name>.key` (mode 0600, never overwritten) and a
/// certificate request `<name>.csr` for the consortium's CA into `dir`; returns the key's
/// fingerprint, the line every member's roster needs.
pub fn generate_identity(dir: &Path, name: &str) -> Result<Fingerprint> {
    NodeId::new(name)?;
    let key_path = dir.join(format!("{name}.key"));
    if key_path.exists() {
        return Err(FederationError::KeyExists { path: key_path });
    }
    fs::create_dir_all(dir).map_err(write_error(dir))?;
    let key = KeyPair::generate().map_err(tls_error)?;
    let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(tls_error)?;
    params.distinguished_name.push(DnType::CommonName, name);
    let request = params.serialize_request(&key).map_err(tls_error)?;
    write_private(&key_path, &key.serialize_pem())?;
    write_public(&dir.join(format!("{name}.csr")), &request.pem().map_err(tls_error)?)?;
    Ok(SigningKey::from_pem(&key.serialize_pem()).map_err(FederationError::Tls)?.public_key().fingerprint())
}

/// What a certificate signed by [`sign_request`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A hospital: a client certificate (its name is its node id).
    Hospital,
    /// The aggregator: a server certificate for the name the hospitals connect to (its host
    /// makes its own key, so the CA's key never has to be on the aggregator's host).
    Aggregator,
}

/// The CA of the PKI in `ca_dir` signs a certificate request (PEM) for `role`: returns the
/// request's name, the certificate (PEM) and its key's fingerprint. The request's signature is
/// checked (its maker holds the key); the name must be a valid node id.
pub fn sign_request(ca_dir: &Path, request: &str, role: Role) -> Result<(String, String, Fingerprint)> {
    let mut params = rcgen::CertificateSigningRequestParams::from_pem(request)
        .map_err(|e| FederationError::Tls(format!("unusable certificate request: {e}")))?;
    let name = params
        .params
        .subject_alt_names
        .iter()
        .find_map(|san| match san {
            rcgen::SanType::DnsName(name) => Some(name.to_string()),
            _ => None,
        })
        .ok_or_else(|| FederationError::Tls("the certificate request names no DNS name".into()))?;
    NodeId::new(name.as_str())?;
    params.params.extended_key_usages = vec![match role {
        Role::Hospital => ExtendedKeyUsagePurpose::ClientAuth,
        Role::Aggregator => ExtendedKeyUsagePurpose::ServerAuth,
    }];
    params.params.is_ca = IsCa::ExplicitNoCa;
    let ca_key = String::from_utf8_lossy(&read(&ca_dir.join(files::CA_KEY))?).into_owned();
    let ca_key = KeyPair::from_pem(&ca_key).map_err(tls_error)?;
    let ca_cert = String::from_utf8_lossy(&read(&ca_dir.join(files::CA_CERT))?).into_owned();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, ca_key).map_err(tls_error)?;
    let cert = params.signed_by(&issuer).map_err(tls_error)?.pem();
    let fingerprint = certificate_fingerprint(cert.as_bytes()).map_err(FederationError::Tls)?;
    Ok((name, cert, fingerprint))
}

/// Writes a development PKI to `dir`: a CA, an aggregator certificate valid for `localhost`,
/// `127.0.0.1` and `server_names`, one client certificate and key per hospital (the keys of
/// every hospital in one place: for `simulate` and tests; a real consortium has each hospital
/// make its own with [`generate_identity`]), and `members.toml` with the roster. With no
/// hospitals it writes the CA and the aggregator's certificate only.
pub fn generate_dev_pki(dir: &Path, hospitals: &[String], server_names: &[String]) -> Result<()> {
    for name in hospitals.iter().chain(server_names) {
        NodeId::new(name.as_str())?;
    }
    let mut unique = hospitals.to_vec();
    unique.sort();
    unique.dedup();
    if unique.len() != hospitals.len() {
        return Err(FederationError::Tls(format!("hospital names must be distinct: {hospitals:?}")));
    }
    // Refuse before writing anything when a key exists: a half-replaced PKI would lock out
    // every hospital enrolled with the old CA.
    let mut keys = vec![dir.join(files::CA_KEY), dir.join(files::SERVER_KEY)];
    keys.extend(hospitals.iter().map(|name| party_files(dir, name).1));
    if let Some(existing) = keys.into_iter().find(|key| key.exists()) {
        return Err(FederationError::KeyExists { path: existing });
    }
    fs::create_dir_all(dir).map_err(write_error(dir))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "fedcare federation CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(tls_error)?;
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_error)?;
    write_public(&dir.join(files::CA_CERT), &ca_cert.pem())?;
    write_private(&dir.join(files::CA_KEY), &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    names.extend(server_names.iter().cloned());
    let mut server = CertificateParams::new(names).map_err(tls_error)?;
    server.distinguished_name.push(DnType::CommonName, "fedcare aggregator");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().map_err(tls_error)?;
    write_public(&dir.join(files::SERVER_CERT), &server.signed_by(&server_key, &issuer).map_err(tls_error)?.pem())?;
    write_private(&dir.join(files::SERVER_KEY), &server_key.serialize_pem())?;

    for name in hospitals {
        let mut client = CertificateParams::new(vec![name.clone()]).map_err(tls_error)?;
        client.distinguished_name.push(DnType::CommonName, name.as_str());
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(tls_error)?;
        let (cert_path, key_path) = party_files(dir, name);
        write_public(&cert_path, &client.signed_by(&key, &issuer).map_err(tls_error)?.pem())?;
        write_private(&key_path, &key.serialize_pem())?;
    }
    if !hospitals.is_empty() {
        let members = dev_consortium(dir, hospitals)?.members;
        write_public(&dir.join(files::MEMBERS), &members_toml(&members))?;
    }
    Ok(())
}

/// The roster as the `[consortium.members]` table of a `hospital.toml`.
pub fn members_toml(members: &std::collections::BTreeMap<String, Fingerprint>) -> String {
    let mut text = String::from(
        "# The consortium's roster: certificate name = key fingerprint. Every hospital.toml\n\
         # carries it under [consortium.members]; check each line with its hospital.\n\
         [consortium.members]\n",
    );
    for (name, fingerprint) in members {
        text.push_str(&format!("{name} = \"{fingerprint}\"\n"));
    }
    text
}

/// The consortium of the hospitals of a development PKI in `dir`: each certificate's name and
/// key fingerprint, with the default bounds.
pub fn dev_consortium(dir: &Path, hospitals: &[String]) -> Result<Consortium> {
    let mut members = std::collections::BTreeMap::new();
    for name in hospitals {
        let (cert, _) = party_files(dir, name);
        let fingerprint = certificate_fingerprint(&read(&cert)?)
            .map_err(|why| FederationError::Tls(format!("{}: {why}", cert.display())))?;
        members.insert(name.clone(), fingerprint);
    }
    Ok(Consortium::new(members))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| FederationError::Read { path: path.to_path_buf(), source })
}

/// The aggregator's TLS: its identity, and client certificates required and checked against `ca`.
pub fn server_tls(ca: &Path, cert: &Path, key: &Path) -> Result<ServerTls> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let unusable = |what: &Path, e: rustls::pki_types::pem::Error| {
        FederationError::Tls(format!("{} holds no usable PEM: {e}", what.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(&read(ca)?) {
        roots.add(der.map_err(|e| unusable(ca, e))?).map_err(tls_error)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().map_err(tls_error)?;
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<core::result::Result<Vec<_>, _>>()
        .map_err(|e| unusable(cert, e))?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| unusable(key, e))?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .map_err(tls_error)?;
    // gRPC runs over HTTP/2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls(Arc::new(config)))
}

/// The aggregator's TLS settings ([`server_tls`]): its identity, and a client certificate of
/// the consortium's CA required of every peer.
#[derive(Clone)]
pub struct ServerTls(Arc<rustls::ServerConfig>);

impl ServerTls {
    /// The rustls configuration.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.0.clone()
    }
}

impl core::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// A hospital's TLS: its identity, and the aggregator checked against `ca` for `domain`.
pub fn client_tls(ca: &Path, cert: &Path, key: &Path, domain: &str) -> Result<ClientTlsConfig> {
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)?))
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .domain_name(domain))
}

/// The name in a DER client certificate: its first DNS name, else its common name.
pub fn name_from_der(der: &[u8]) -> core::result::Result<String, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("unreadable client certificate: {e}"))?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                return Ok((*dns).to_string());
            }
        }
    }
    match cert.subject().iter_common_name().next() {
        Some(cn) => Ok(cn.as_str().map_err(|_| "the common name is not text".to_owned())?.to_string()),
        None => Err("the client certificate names no DNS name and no common name".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_pki_names_each_hospital_and_keys_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        generate_dev_pki(dir.path(), &["st-marys".into(), "general".into()], &["fed.example".into()]).unwrap();
        let (cert, key) = party_files(dir.path(), "st-marys");
        let pem = fs::read_to_string(cert).unwrap();
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1.contents;
        assert_eq!(name_from_der(&der).unwrap(), "st-marys");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [key.clone(), dir.path().join(files::CA_KEY), dir.path().join(files::SERVER_KEY)] {
                let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", key.display());
            }
        }
        let before = fs::read(&key).unwrap();
        let error = generate_dev_pki(dir.path(), &["st-marys".into()], &[]).unwrap_err();
        assert!(matches!(error, FederationError::KeyExists { .. }), "{error}");
        assert_eq!(fs::read(&key).unwrap(), before, "the existing key is untouched");
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(
            generate_dev_pki(other.path(), &["bad name".into()], &[]),
            Err(FederationError::Config(crate::error::ConfigError::Name(_)))
        ));
        assert!(generate_dev_pki(other.path(), &["a".into(), "a".into()], &[]).is_err());
        assert!(!other.path().join(files::CA_KEY).exists(), "nothing is written for refused names");
    }

    #[test]
    fn a_hospital_makes_its_own_key_and_the_ca_signs_its_request() {
        let consortium = tempfile::tempdir().unwrap();
        generate_dev_pki(consortium.path(), &[], &[]).unwrap();
        assert!(!consortium.path().join(files::MEMBERS).exists(), "no hospital, no roster");
        let hospital = tempfile::tempdir().unwrap();
        let fingerprint = generate_identity(hospital.path(), "st-marys").unwrap();
        assert!(matches!(generate_identity(hospital.path(), "st-marys"), Err(FederationError::KeyExists { .. })));
        let request = fs::read_to_string(hospital.path().join("st-marys.csr")).unwrap();
        let (name, cert, signed) = sign_request(consortium.path(), &request, Role::Hospital).unwrap();
        assert_eq!((name.as_str(), signed), ("st-marys", fingerprint), "the certificate carries the hospital's key");
        let der = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap().1.contents;
        assert_eq!(name_from_der(&der).unwrap(), "st-marys");
        let usage = |der: &[u8]| {
            let (_, parsed) = x509_parser::parse_x509_certificate(der).unwrap();
            let usage = parsed.extended_key_usage().unwrap().unwrap().value.clone();
            (usage.client_auth, usage.server_auth)
        };
        assert_eq!(usage(&der), (true, false), "a hospital's is a client certificate");
        // The aggregator's host makes its own key too; the CA signs a server certificate.
        let host = tempfile::tempdir().unwrap();
        generate_identity(host.path(), "aggregator").unwrap();
        let request = fs::read_to_string(host.path().join("aggregator.csr")).unwrap();
        let (name, cert, _) = sign_request(consortium.path(), &request, Role::Aggregator).unwrap();
        let der = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap().1.contents;
        assert_eq!((name.as_str(), usage(&der)), ("aggregator", (false, true)));
        // The hospital's own key signs what its roster entry pins.
        let key = SigningKey::from_pem_file(&hospital.path().join("st-marys.key")).unwrap();
        assert_eq!(key.public_key().fingerprint(), fingerprint);
        // A request whose bytes were changed (its signature no longer matches) is refused.
        let mut lines: Vec<String> = request.lines().map(str::to_owned).collect();
        let changed = if lines[2].starts_with('A') { "B" } else { "A" };
        lines[2].replace_range(0..1, changed);
        assert!(sign_request(consortium.path(), &lines.join("\n"), Role::Hospital).is_err());
    }
}
