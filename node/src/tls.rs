//! mTLS for every connection: a development PKI made with rcgen (a "provisioning kit"), the
//! server and client TLS configurations, and the node id read from a client certificate.
//!
//! There is no plaintext mode. The aggregator requires a client certificate signed by the
//! federation's CA; a hospital's id is the first DNS name of its certificate (falling back to the
//! common name). Private keys are written with mode 0600 and never committed: tests and
//! `fedcare simulate` generate their own at run time.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

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
}

/// Installs rustls's ring crypto provider for the process (idempotent).
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A hospital or aggregator name usable in a certificate and as a node id.
pub fn check_name(name: &str) -> Result<()> {
    ensure!(
        !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !name.starts_with('-'),
        "invalid name {name:?}: use 1 to 64 letters, digits, '-' or '.'"
    );
    Ok(())
}

fn write_private(path: &Path, pem: &str) -> Result<()> {
    fs::write(path, pem).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Paths of one party's certificate and key inside a PKI directory.
pub fn party_files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")))
}

/// Writes a development PKI to `dir`: a CA, an aggregator certificate valid for `localhost`,
/// `127.0.0.1` and `server_names`, and one client certificate per hospital.
pub fn generate_dev_pki(dir: &Path, hospitals: &[String], server_names: &[String]) -> Result<()> {
    ensure!(!hospitals.is_empty(), "name at least one hospital");
    for name in hospitals.iter().chain(server_names) {
        check_name(name)?;
    }
    let mut unique = hospitals.to_vec();
    unique.sort();
    unique.dedup();
    ensure!(unique.len() == hospitals.len(), "hospital names must be distinct");
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "fedcare federation CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    fs::write(dir.join(files::CA_CERT), ca_cert.pem())?;
    write_private(&dir.join(files::CA_KEY), &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    names.extend(server_names.iter().cloned());
    let mut server = CertificateParams::new(names)?;
    server.distinguished_name.push(DnType::CommonName, "fedcare aggregator");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    fs::write(dir.join(files::SERVER_CERT), server.signed_by(&server_key, &issuer)?.pem())?;
    write_private(&dir.join(files::SERVER_KEY), &server_key.serialize_pem())?;

    for name in hospitals {
        let mut client = CertificateParams::new(vec![name.clone()])?;
        client.distinguished_name.push(DnType::CommonName, name.as_str());
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate()?;
        let (cert_path, key_path) = party_files(dir, name);
        fs::write(cert_path, client.signed_by(&key, &issuer)?.pem())?;
        write_private(&key_path, &key.serialize_pem())?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The aggregator's TLS: its identity, and client certificates required and checked against `ca`.
pub fn server_tls(ca: &Path, cert: &Path, key: &Path) -> Result<ServerTlsConfig> {
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .client_ca_root(Certificate::from_pem(read(ca)?)))
}

/// A hospital's TLS: its identity, and the aggregator checked against `ca` for `domain`.
pub fn client_tls(ca: &Path, cert: &Path, key: &Path, domain: &str) -> Result<ClientTlsConfig> {
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)?))
        .identity(Identity::from_pem(read(cert)?, read(key)?))
        .domain_name(domain))
}

/// The node id in a DER client certificate: its first DNS name, else its common name.
pub fn node_id_from_der(der: &[u8]) -> Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).context("unreadable client certificate")?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                return Ok((*dns).to_string());
            }
        }
    }
    if let Some(cn) = cert.subject().iter_common_name().next() {
        return Ok(cn.as_str().context("common name is not text")?.to_string());
    }
    bail!("client certificate names no DNS name and no common name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_pki_names_each_hospital() {
        let dir = tempfile::tempdir().unwrap();
        generate_dev_pki(dir.path(), &["st-marys".into(), "general".into()], &["fed.example".into()]).unwrap();
        let (cert, _) = party_files(dir.path(), "st-marys");
        let pem = fs::read_to_string(cert).unwrap();
        let der = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap().1.contents;
        assert_eq!(node_id_from_der(&der).unwrap(), "st-marys");
        assert!(generate_dev_pki(dir.path(), &["bad name".into()], &[]).is_err());
        assert!(generate_dev_pki(dir.path(), &["a".into(), "a".into()], &[]).is_err());
    }
}
