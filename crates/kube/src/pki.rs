//! The API server's certificates: a CA made once per data root, the serving certificate it
//! signs (for 127.0.0.1, localhost and the `kubernetes` service names), and the admin client
//! certificate (`kubernetes-admin`, group `system:masters`) the kubeconfig carries. Kept under
//! `<root>/kube/pki`, keys 0600; made again, all together, when any file is missing. More
//! client certificates, for other users and groups, are signed on demand (`berth kubeconfig
//! --user`), and a client certificate's subject names its user as kube-apiserver reads it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// PEM files of the cluster's identities.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (clients trust it; it signs client certificates).
    pub ca_cert: String,
    /// The serving certificate and key.
    pub server_cert: String,
    /// The serving key.
    pub server_key: String,
    /// The admin client certificate.
    pub admin_cert: String,
    /// The admin client key.
    pub admin_key: String,
}

/// Errors making or reading the certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A user name or group that cannot be a certificate's subject.
    #[error("{0}")]
    Invalid(String),
}

const FILES: [&str; 6] = ["ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key"];

fn name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    if let Some(o) = org {
        d.push(DnType::OrganizationName, o);
    }
    d
}

/// The CA's identity (what its certificate and everything it signs name as the issuer).
fn ca_params() -> CertificateParams {
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("berth-ca", None);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca
}

/// A client certificate and its key, PEM: CN `user`, O the group (if any).
fn client<S: rcgen::SigningKey>(issuer: &Issuer<'_, S>, user: &str, groups: &[&str]) -> Result<(String, String), Error> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::default();
    p.distinguished_name = name(user, groups.first().copied());
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    validity(&mut p, 825);
    let cert = p.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The user a client certificate (DER) names, as kube-apiserver reads it: the subject's common
/// name, and its organizations as groups. `None` when the certificate cannot be read.
pub fn subject(der: &[u8]) -> Option<(String, Vec<String>)> {
    const CN: [u64; 4] = [2, 5, 4, 3];
    const O: [u64; 4] = [2, 5, 4, 10];
    let mut cn = None;
    let mut orgs = Vec::new();
    yasna::parse_der(der, |r| {
        r.read_sequence(|cert| {
            cert.next().read_sequence(|tbs| {
                tbs.read_optional(|r| r.read_tagged(yasna::Tag::context(0), |r| r.read_der()))?;
                // serialNumber, signature, issuer, validity
                for _ in 0..4 {
                    tbs.next().read_der()?;
                }
                tbs.next().read_sequence_of(|rdn| {
                    rdn.read_set_of(|atv| {
                        atv.read_sequence(|a| {
                            let oid = a.next().read_oid()?;
                            let value = a.next().read_tagged_der()?;
                            let text = String::from_utf8_lossy(value.value()).into_owned();
                            if oid.components().as_slice() == CN {
                                cn = Some(text);
                            } else if oid.components().as_slice() == O {
                                orgs.push(text);
                            }
                            Ok(())
                        })
                    })
                })?;
                while tbs.read_optional(|r| r.read_der())?.is_some() {}
                Ok(())
            })?;
            cert.next().read_der()?;
            cert.next().read_der()?;
            Ok(())
        })
    })
    .ok()?;
    Some((cn?, orgs))
}

fn validity(p: &mut CertificateParams, days: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).expect("a time in range");
    p.not_before = at(now - 3600);
    p.not_after = at(now + days * 86400);
}

impl Pki {
    /// Load the certificates under `dir`, or make them (extra SANs: more addresses the server
    /// answers on).
    pub fn load_or_create(dir: &Path, extra_ips: &[IpAddr]) -> Result<Pki, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        if FILES.iter().all(|f| dir.join(f).is_file()) {
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(io(&dir.join(f)));
            return Ok(Pki {
                ca_cert: read("ca.crt")?,
                server_cert: read("apiserver.crt")?,
                server_key: read("apiserver.key")?,
                admin_cert: read("admin.crt")?,
                admin_key: read("admin.key")?,
            });
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (pki, ca_key) = Self::generate(extra_ips)?;
        let write = |f: &str, data: &str, mode: u32| -> Result<(), Error> {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let p = dir.join(f);
            let tmp = dir.join(format!(".{f}.tmp"));
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(mode)
                .open(&tmp)
                .map_err(io(&tmp))?;
            file.write_all(data.as_bytes()).and_then(|_| file.sync_all()).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &p).map_err(io(&p))
        };
        write("ca.key", &ca_key, 0o600)?;
        write("apiserver.key", &pki.server_key, 0o600)?;
        write("admin.key", &pki.admin_key, 0o600)?;
        write("apiserver.crt", &pki.server_cert, 0o644)?;
        write("admin.crt", &pki.admin_cert, 0o644)?;
        write("ca.crt", &pki.ca_cert, 0o644)?;
        Ok(pki)
    }

    /// A fresh CA, serving and admin certificate; also returns the CA key.
    fn generate(extra_ips: &[IpAddr]) -> Result<(Pki, String), Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca = ca_params();
        validity(&mut ca, 3650);
        let ca_pem_key = ca_key.serialize_pem();
        let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut sans = vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ];
        let mut ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1])];
        ips.extend(extra_ips.iter().copied().filter(|ip| !ip.is_unspecified()));
        sans.dedup();
        let mut server = CertificateParams::new(sans)?;
        for ip in ips {
            server.subject_alt_names.push(SanType::IpAddress(ip));
        }
        server.distinguished_name = name("kube-apiserver", None);
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        validity(&mut server, 825);
        let server_cert = server.signed_by(&server_key, &issuer)?;

        let (admin_cert, admin_key) = client(&issuer, "kubernetes-admin", &["system:masters"])?;
        Ok((
            Pki {
                ca_cert: issuer.pem(),
                server_cert: server_cert.pem(),
                server_key: server_key.serialize_pem(),
                admin_cert,
                admin_key,
            },
            ca_pem_key,
        ))
    }

    /// A client certificate and key (PEM) for `user` in `groups`, signed by the CA kept under
    /// `dir` (its key is needed: root only). Its subject is what the API server authenticates:
    /// CN the user, one O per group, as kube-apiserver reads client certificates.
    pub fn sign_client(dir: &Path, user: &str, groups: &[&str]) -> Result<(String, String), Error> {
        if user.is_empty() || user.chars().any(char::is_control) {
            return Err(Error::Invalid(format!("invalid user name {user:?}")));
        }
        if let Some(g) = groups.iter().find(|g| g.is_empty() || g.chars().any(char::is_control)) {
            return Err(Error::Invalid(format!("invalid group name {g:?}")));
        }
        if groups.len() > 1 {
            // rcgen keeps one value per attribute type in a subject.
            return Err(Error::Invalid(
                "a certificate made here names at most one group; bind the user itself for the others".into(),
            ));
        }
        let path = dir.join("ca.key");
        let pem = std::fs::read_to_string(&path).map_err(|source| Error::Io { path, source })?;
        let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&pem)?);
        client(&issuer, user, groups)
    }

    /// An admin kubeconfig for a server at `server` (`https://127.0.0.1:6443`), with the
    /// certificates embedded.
    pub fn kubeconfig(&self, server: &str) -> String {
        kubeconfig("berth-admin", "berth", server, &self.ca_cert, &self.admin_cert, &self.admin_key)
    }

    /// A kubeconfig for `user` in `groups` (a client certificate signed now by the CA under
    /// `dir`), for a server at `server` — what `berth kubeconfig --user` prints.
    pub fn user_kubeconfig(dir: &Path, server: &str, user: &str, groups: &[&str]) -> Result<String, Error> {
        let path = dir.join("ca.crt");
        let ca = std::fs::read_to_string(&path).map_err(|source| Error::Io { path, source })?;
        let (cert, key) = Self::sign_client(dir, user, groups)?;
        Ok(kubeconfig(user, &format!("{user}@berth"), server, &ca, &cert, &key))
    }
}

/// A kubeconfig of one cluster (`berth`), one user and one context.
fn kubeconfig(user: &str, context: &str, server: &str, ca: &str, cert: &str, key: &str) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    // JSON strings are YAML strings: names are quoted whatever they hold.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: berth\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: {}\n  context:\n    cluster: berth\n    user: {}\n    namespace: default\ncurrent-context: {}\npreferences: {{}}\n",
        b64(ca),
        q(user),
        b64(cert),
        b64(key),
        q(context),
        q(user),
        q(context)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_client_certificate_names_its_user_and_group() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &[]).unwrap();
        let der = |pem: &str| rustls_pemfile::certs(&mut pem.as_bytes()).next().unwrap().unwrap().to_vec();
        assert_eq!(
            subject(&der(&pki.admin_cert)),
            Some(("kubernetes-admin".to_string(), vec!["system:masters".to_string()]))
        );
        let (cert, key) = Pki::sign_client(dir.path(), "alice", &["dev"]).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        assert_eq!(subject(&der(&cert)), Some(("alice".to_string(), vec!["dev".to_string()])));
        assert!(Pki::sign_client(dir.path(), "", &[]).is_err());
        assert!(Pki::sign_client(dir.path(), "bob", &["a", "b"]).is_err());
        assert_eq!(subject(b"not a certificate"), None);
    }
}
